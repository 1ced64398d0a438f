"""``--fail-on`` rules of ``loadbench compare``: their grammar, metric aliases and checks.

``METRIC OP CHANGE``, e.g. ``p99>+10%``, ``p99.9>+20%``, ``p50>+5ms``, ``throughput<-5%``,
``error_rate>+0.5pp``, ``f1<-0.01``. METRIC is a summary path or an alias (`ALIASES`, and
``ttft_p95`` style names). A rule whose metric no run has is a `UsageError` (`check_rules`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadbench.analyze.resources import gpu_count
from loadbench.compare.metrics import LATENCY_STATS
from loadbench.compare.rundata import RunData
from loadbench.errors import UsageError

ALIASES: dict[str, str] = {
    **{k: f"latency_ms.{k}" for k in LATENCY_STATS},
    "throughput": "throughput_rps",
    "request_rate": "request_rate_rps",
    "error_rate": "requests.error_rate",
    "goodput": "goodput_rps",
    "throughput_per_gpu": "throughput_per_gpu_rps",
    "output_tokens_per_s": "tokens.output_per_s",
    "tokens_per_s": "tokens.output_per_s",
    "realtime_fraction": "rtf.realtime_fraction",
    "cpu": "resources.server_process.cpu_percent.mean",
    "server_cpu": "resources.server_process.cpu_percent.mean",
    "rss": "resources.server_process.rss_bytes.max",
    "host_cpu": "resources.host.cpu_percent.mean",
    "generator_cpu": "resources.generator.cpu_mean_percent",
    "gpu_util": "resources.gpus.0.util_mean",
    "gpu_mem": "resources.gpus.0.mem_used_max_mib",
    "gpu_power": "resources.gpus.0.power_mean_w",
    "energy_per_request": "resources.energy.j_per_request",
    **{
        q: f"quality.{q}" for q in ("f1", "accuracy", "precision", "recall", "exact_match", "bleu", "rouge_l")
    },
}
ALIASES["p99.9"] = ALIASES["p999"]  # as people write it (and as `--slo` accepts it)
# ttft_p95, service_p99, e2e_p99.9, rtf_p90, ...: a prefix and a statistic.
_PREFIX_ALIAS = {
    "ttft": "ttft_ms",
    "itl": "itl_ms",
    "tpot": "tpot_ms",
    "e2e": "e2e_ms",
    "service": "service_time_ms",
    "rtf": "rtf",
}
_TOKEN_ALIAS = re.compile(r"^(ttft|itl|tpot|e2e|service|rtf)_(p50|p90|p95|p99|p999|p99\.9|mean|max|min)$")
_RULE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>[<>])\s*(?P<sign>[+-]?)\s*"
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>%|ms|pp)?\s*$"
)


@dataclass(frozen=True)
class Rule:
    """One parsed ``--fail-on`` rule: fail when ``metric`` changed beyond ``threshold``."""

    text: str
    metric: str  # summary path
    op: str  # ">" rose by more than, "<" fell by more than
    kind: str  # "pct" (relative, %), "abs" (metric's unit; ms for "ms"), "pp" (percentage points)
    threshold: float  # signed: positive for ">", negative for "<"

    def change(self, delta: float | None, delta_pct: float | None) -> float | None:
        """The metric's change in this rule's unit (None when it cannot be expressed)."""
        if delta is None:
            return None
        if self.kind == "pct":
            return delta_pct
        return delta * 100.0 if self.kind == "pp" else delta

    def broken(self, delta: float | None, delta_pct: float | None) -> bool:
        change = self.change(delta, delta_pct)
        if change is None:
            return False
        return change > self.threshold if self.op == ">" else change < self.threshold


def parse_rule(text: str) -> Rule:
    """Parse one ``--fail-on`` rule (grammar in the module docstring); `UsageError` when malformed."""
    match = _RULE.match(text)
    if not match:
        raise UsageError(
            f"cannot read the rule {text!r}: expected METRIC>CHANGE or METRIC<CHANGE, "
            "e.g. p99>+10%, p50>+5ms, throughput<-5%, error_rate>+0.5pp, f1<-0.01"
        )
    name, op, sign, unit = match["metric"], match["op"], match["sign"], match["unit"]
    number = float(match["number"])
    if (op == ">" and sign == "-") or (op == "<" and sign == "+"):
        word = "rise (>+N)" if op == ">" else "fall (<-N)"
        raise UsageError(f"the rule {text!r} contradicts itself: {op!r} needs a {word}")
    metric = _resolve(name, text)
    kind = {"%": "pct", "pp": "pp"}.get(unit or "", "abs")
    if unit == "ms" and not _is_ms(metric):
        raise UsageError(f"the rule {text!r} gives ms for {metric}, which is not a latency in ms")
    if unit == "pp" and not _is_fraction(metric):
        raise UsageError(f"the rule {text!r} gives percentage points for {metric}, which is not a fraction")
    threshold = number if op == ">" else -number
    return Rule(text=text.strip(), metric=metric, op=op, kind=kind, threshold=threshold)


def _resolve(name: str, text: str) -> str:
    if name in ALIASES:
        return ALIASES[name]
    if m := _TOKEN_ALIAS.match(name):
        return f"{_PREFIX_ALIAS[m[1]]}.{m[2].replace('p99.9', 'p999')}"
    if name.endswith(".p99.9"):  # latency_ms.p99.9, as people write it
        return name.removesuffix(".p99.9") + ".p999"
    if "." in name or name.endswith("_rps"):
        return name
    raise UsageError(
        f"unknown metric {name!r} in the rule {text!r}: use a summary.json path (latency_ms.p99) "
        f"or one of {', '.join(sorted(ALIASES))}, ttft_p95, itl_p50, tpot_mean, e2e_p99, service_p99, rtf_p90"
    )


def _has(run: RunData, path: str) -> bool:
    """Whether ``path`` names a key of the run's summary (its value may be null)."""
    if path == "throughput_per_gpu_rps":
        return bool(gpu_count(run.summary))
    node: Any = run.summary
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return not isinstance(node, dict | list)


def check_rules(rules: Sequence[Rule], runs: Sequence[RunData]) -> None:
    """`UsageError` for a rule whose metric none of ``runs`` has: a misspelt metric
    (``latency_ms.p9``) would otherwise never fail, silently disabling the gate."""
    for rule in rules:
        if not any(_has(run, rule.metric) for run in runs):
            raise UsageError(
                f"the rule {rule.text!r} names {rule.metric}, which is in none of the runs' summary.json: "
                "check its spelling (a summary.json path, or an alias such as p99, p99.9, throughput, error_rate)"
            )


def _is_ms(path: str) -> bool:
    return path.split(".", 1)[0].endswith("_ms")


def _is_fraction(path: str) -> bool:
    return path.endswith(("error_rate", "busy_fraction", "realtime_fraction")) or path.startswith("quality.")
