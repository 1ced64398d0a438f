// loadbench's corner panel on Locust's web UI page: the run being recorded, then its report link.
// Built with textContent only: run ids and messages are data, never markup.
(function () {
  "use strict";
  var panel = document.createElement("div");
  panel.id = "loadbench-panel";
  panel.setAttribute("style",
    "position:fixed;right:12px;bottom:12px;z-index:2000;max-width:460px;padding:8px 12px;" +
    "font:13px/1.4 system-ui,sans-serif;background:#fff;color:#222;border:1px solid #bbb;" +
    "border-radius:6px;box-shadow:0 2px 8px rgba(0,0,0,.2)");
  function link(href, text, id) {
    var a = document.createElement("a");
    a.href = href; a.textContent = text; a.target = "_blank"; a.rel = "noopener";
    if (id) a.id = id;
    return a;
  }
  function line(parts) {
    var div = document.createElement("div");
    parts.forEach(function (p) { div.appendChild(typeof p === "string" ? document.createTextNode(p) : p); });
    return div;
  }
  function render(s) {
    panel.replaceChildren();
    var title = document.createElement("b");
    title.textContent = "loadbench";
    var cur = s.current;
    if (!cur) {
      panel.appendChild(line([title, " · start a test: each start/stop is one run directory with its report"]));
    } else if (s.recording) {
      panel.appendChild(line([title, " · recording " + cur.id + " (" + s.elapsed_s + " s" +
        (s.in_warmup ? ", warmup" : "") + ")"]));
    } else if (cur.state === "done") {
      panel.appendChild(line([title, " · " + cur.id + " " + cur.status + ": ",
        link(cur.report, "report", "loadbench-report-link")]));
    } else {
      panel.appendChild(line([title, " · " + cur.id + ": " + (cur.problem || cur.state + "...")]));
    }
    if (s.problem) panel.appendChild(line([s.problem]));
    panel.appendChild(line([link("/loadbench/", "live resources, exact percentiles, all runs (" + s.runs.length + ")",
      "loadbench-page-link")]));
  }
  function poll() {
    fetch("/loadbench/api/status", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(render)
      .catch(function () {})
      .finally(function () { setTimeout(poll, 1500); });
  }
  function start() { document.body.appendChild(panel); poll(); }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
