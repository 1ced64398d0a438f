"""The report's "Resources" section: what the host, the server process, the load generator and
each GPU did during the measured window, energy, latency correlations, Prometheus series and
remote hosts; the generator-saturation warning and the flags of a saturated generator and of a
saturated host shared with the server; and the short Markdown bullets of the same.

Consumes ``summary.json``'s ``resources`` (`loadbench.analyze.resources`) and the stacked resources
figure as PNG bytes; produces the section's HTML from the ``resources.html.j2`` template (this
module turns the summary into plain-text rows; the template escapes them as it places them) and
Markdown lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadbench.analyze.resources import SATURATED_PERCENT, host_saturated, shared_host
from loadbench.record import rundir
from loadbench.report.fmt import (
    DASH,
    as_dict,
    as_list,
    format_byte_rate,
    format_bytes,
    format_count,
    format_joules,
    format_number,
    format_percent,
    format_value,
    num,
)
from loadbench.report.html import png_base64, render_template
from loadbench.report.markdown import md

TEMPLATE = "resources.html.j2"
MAX_CORRELATIONS = 8  # latency correlations shown, strongest first
MAX_PROM_SERIES = 30  # Prometheus series shown in the report table
RESOURCES_CAPTION = (
    "Resources over time",
    "Per-second latency and throughput above the sampled resources on the same time axis: CPU "
    "(the host as a share of all its cores; the server process tree and the load generator as a "
    "share of one core, so they can exceed 100 %; dashed: the generator's saturation threshold), "
    "memory, and where present GPU utilization, GPU memory and power. Grey: warmup.",
)

_HOST_ROWS = (
    ("host CPU (% of all cores)", "cpu_percent", format_percent),
    ("host load average (1 min)", "load1", lambda v: format_number(v, 2)),
    ("host memory used", "mem_used_bytes", format_bytes),
    ("host memory available", "mem_available_bytes", format_bytes),
    ("host swap used", "swap_used_bytes", format_bytes),
    ("network sent", "net_sent_bytes_per_s", format_byte_rate),
    ("network received", "net_recv_bytes_per_s", format_byte_rate),
    ("disk read", "disk_read_bytes_per_s", format_byte_rate),
    ("disk write", "disk_write_bytes_per_s", format_byte_rate),
)
_SERVER_ROWS = (
    ("server CPU (% of one core)", "cpu_percent", format_percent),
    ("server memory (RSS)", "rss_bytes", format_bytes),
    ("server threads", "threads", format_number),
    ("server open file descriptors", "open_fds", format_number),
    ("server processes", "processes", format_number),
)


def all_gpus(resources: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(display name, GPU entry) of every GPU: this machine's first, then each remote host's."""
    out = [(f"gpu{as_dict(g).get('index')}", as_dict(g)) for g in as_list(resources.get("gpus"))]
    for label, remote in as_dict(resources.get("remote")).items():
        out += [
            (f"{label} gpu{as_dict(g).get('index')}", as_dict(g))
            for g in as_list(as_dict(remote).get("gpus"))
        ]
    return out


def saturation_text(generator: dict[str, Any]) -> str:
    share = num(generator.get("saturated_share"))
    how_often = f" in {share * 100:.1f} % of the samples" if share is not None else ""
    return (
        f"The load generator was saturated: it used more than {SATURATED_PERCENT:.0f} % of a CPU core"
        f"{how_often} (max {format_percent(generator.get('cpu_max_percent'))}). Latency and throughput "
        "may be limited by the generator, not the server: use more workers or fewer users."
    )


def top_notices(summary: dict[str, Any]) -> list[str]:
    """The summary's notices, less the generator-saturation one when the warning shows it instead."""
    notices = [str(n) for n in as_list(summary.get("notices"))]
    resources = as_dict(summary.get("resources"))
    if as_dict(resources.get("generator")).get("saturated") is True:
        shown = {str(n) for n in as_list(resources.get("notices"))}
        notices = [n for n in notices if n not in shown]
    return notices


def saturation_warning(resources: dict[str, Any]) -> str | None:
    """The warning shown near the top of the page when the load generator was saturated."""
    generator = as_dict(resources.get("generator"))
    return saturation_text(generator) if generator.get("saturated") is True else None


# (resource, mean, p95, max, flag): one row of the usage table, as plain text; flag: None, or why
# the row is marked "saturated" (the mark's title).
UsageRow = tuple[str, str, str, str, str | None]
GENERATOR_FLAG = "generator saturated"


def host_flag(summary: dict[str, Any]) -> str | None:
    """Why the host CPU row is marked: its CPU was at its limit with the server beside the generator."""
    if not host_saturated(summary):
        return None
    host_cpu = as_dict(as_dict(summary.get("resources")).get("host_cpu"))
    return (
        f"host at its limit: {format_percent(host_cpu.get('mean_percent'))} of all cores on average "
        f"(time-weighted); the generator shared it with the server ({shared_host(summary)})"
    )


def _spread_rows(group: dict[str, Any], spec: Sequence[tuple[str, str, Any]]) -> list[UsageRow]:
    """Rows of (name, mean, p95, max) for the metrics of ``spec`` that ``group`` has."""
    rows: list[UsageRow] = []
    for name, key, fmt in spec:
        if key not in group:
            continue
        s = as_dict(group.get(key))
        rows.append((name, fmt(s.get("mean")), fmt(s.get("p95")), fmt(s.get("max")), None))
    return rows


def _usage_rows(
    host: dict[str, Any],
    server: dict[str, Any] | None,
    generator: dict[str, Any],
    cpu_flag: str | None = None,
) -> list[UsageRow]:
    """The host's, the server's and the generator's rows; ``cpu_flag`` marks the host CPU row."""
    rows = _spread_rows(host, _HOST_ROWS)
    rows = [(*row[:4], cpu_flag) if row[0] == _HOST_ROWS[0][0] else row for row in rows]
    rows += _spread_rows(server or {}, _SERVER_ROWS)
    if generator and (
        generator.get("cpu_mean_percent") is not None or generator.get("cpu_max_percent") is not None
    ):
        rows.append(
            (
                "load generator CPU (% of one core)",
                format_percent(generator.get("cpu_mean_percent")),
                DASH,
                format_percent(generator.get("cpu_max_percent")),
                GENERATOR_FLAG if generator.get("saturated") is True else None,
            )
        )
    return rows


def _process(server: dict[str, Any] | None) -> dict[str, Any] | None:
    """The sampled server process's facts; None when none was sampled, {} when not identified."""
    if server is None:
        return None
    process = server.get("process")
    if not isinstance(process, dict):
        return {}
    return {k: process.get(k) for k in ("pid", "name", "how", "cmdline")}


def _slash(*values: str, unit: str = "") -> str:
    """``a / b / c unit``, or a dash when every value is missing."""
    if all(v == DASH for v in values):
        return DASH
    return " / ".join(values) + (f" {unit}" if unit else "")


def _gpu_cells(g: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, text) rows of one GPU entry of ``summary["resources"]``."""

    def cell(key: str, decimals: int = 1) -> str:
        v = num(g.get(key))
        return DASH if v is None else f"{v:,.{decimals}f}"

    busy = num(g.get("busy_fraction"))
    energy = format_joules(g.get("energy_j"))
    if energy != DASH and g.get("energy_method"):
        energy += f" ({g['energy_method']})"
    return [
        ("name", DASH if g.get("name") is None else str(g["name"])),
        (
            "utilization mean / p95 / max",
            _slash(cell("util_mean"), cell("util_p95"), cell("util_max"), unit="%"),
        ),
        ("busy fraction", format_percent(None if busy is None else busy * 100)),
        ("memory utilization mean", format_percent(g.get("mem_util_mean"))),
        (
            "memory used max / total",
            _slash(cell("mem_used_max_mib", 0), cell("mem_total_mib", 0), unit="MiB"),
        ),
        ("memory used mean", _slash(cell("mem_used_mean_mib", 0), unit="MiB")),
        ("server's GPU memory max", _slash(cell("server_mem_max_mib", 0), unit="MiB")),
        (
            "power mean / max / limit",
            _slash(cell("power_mean_w"), cell("power_max_w"), cell("power_limit_w"), unit="W"),
        ),
        ("temperature max", _slash(cell("temp_max_c", 0), unit="°C")),
        ("SM clock mean", _slash(cell("sm_clock_mean_mhz", 0), unit="MHz")),
        (
            "PCIe tx / rx mean",
            _slash(
                format_byte_rate(g.get("pcie_tx_mean_bytes_per_s")),
                format_byte_rate(g.get("pcie_rx_mean_bytes_per_s")),
            ),
        ),
        ("energy", energy),
    ]


def _gpu_columns(gpus: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """One column per GPU, one row per metric: ``{"names": [...], "rows": [[metric, *values]]}``."""
    if not gpus:
        return None
    columns = [_gpu_cells(g) for _, g in gpus]
    rows = [[label, *(cells[i][1] for cells in columns)] for i, (label, _) in enumerate(columns[0])]
    return {"names": [name for name, _ in gpus], "rows": rows}


def _energy_rows(energy: dict[str, Any]) -> list[tuple[str, str]]:
    if num(energy.get("j_total")) is None:
        return []
    rows = [
        ("GPU energy in the measured window", format_joules(energy.get("j_total"))),
        ("energy per successful request", format_joules(energy.get("j_per_request"))),
    ]
    if num(energy.get("j_per_output_token")) is not None:
        rows.append(("energy per output token", format_joules(energy.get("j_per_output_token"))))
    return rows


def _correlation_rows(correlation: dict[str, Any]) -> list[tuple[str, str]]:
    """(resource, Pearson r) of the strongest latency correlations, strongest first."""
    pairs = [(str(k), v) for k, r in correlation.items() if (v := num(r)) is not None]
    pairs.sort(key=lambda kv: (-abs(kv[1]), kv[0]))
    return [(k, f"{r:+.2f}") for k, r in pairs[:MAX_CORRELATIONS]]


def _prometheus_rows(prometheus: dict[str, Any]) -> dict[str, Any]:
    """The first `MAX_PROM_SERIES` series' (name, mean, p95, max), and how many more there are."""
    items = list(prometheus.items())
    rows = [
        [str(name), *(format_value(as_dict(s).get(k)) for k in ("mean", "p95", "max"))]
        for name, s in items[:MAX_PROM_SERIES]
    ]
    more = len(items) - MAX_PROM_SERIES
    return {"rows": rows, "more": f"{more:,}" if more > 0 else None}


def _offset_text(offset: Any, uncertainty: Any) -> str:
    o, u = num(offset), num(uncertainty)
    if o is None:
        return "clock offset unknown"

    def fmt(v: float, sign: str = "") -> str:
        return f"{v:{sign},.3f} s" if abs(v) >= 1 else f"{v * 1000:{sign},.1f} ms"

    return f"clock offset {fmt(o, '+')}" + ("" if u is None else f" ± {fmt(u)}")


def resources_html(summary: dict[str, Any], png: bytes | None) -> str:
    """The "Resources" section's body (the page places its heading), from the ``resources.html.j2``
    template; ``png`` is the stacked resources figure, None when there is none."""
    resources = summary.get("resources")
    if not isinstance(resources, dict):
        return render_template(TEMPLATE, present=False)
    server = resources.get("server_process")
    server = server if isinstance(server, dict) else None
    interval = num(resources.get("interval_s"))
    local_gpus = [(f"gpu{as_dict(g).get('index')}", as_dict(g)) for g in as_list(resources.get("gpus"))]
    return render_template(
        TEMPLATE,
        present=True,
        notices=[str(n) for n in as_list(resources.get("notices"))],
        figure=None if png is None else ("plot-resources", png_base64(png), *RESOURCES_CAPTION),
        sampled=bool(resources.get("sampled")),
        samples_file=rundir.SAMPLES,
        samples=format_count(resources.get("samples")),
        interval=None if interval is None else format_number(interval, 2),
        process=_process(server),
        usage=_usage_rows(
            as_dict(resources.get("host")), server, as_dict(resources.get("generator")), host_flag(summary)
        ),
        gpus=_gpu_columns(local_gpus),
        energy=_energy_rows(as_dict(resources.get("energy"))),
        correlation=_correlation_rows(as_dict(resources.get("latency_correlation"))),
        prometheus=_prometheus_rows(as_dict(resources.get("prometheus"))),
        remotes=[
            _remote(str(label), as_dict(entry)) for label, entry in as_dict(resources.get("remote")).items()
        ],
    )


def _remote(label: str, remote: dict[str, Any]) -> dict[str, Any]:
    """A remote host's readings, on this machine's clock (the offset says how far apart they were)."""
    rs = remote.get("server_process")
    gpus = [(f"gpu{as_dict(g).get('index')}", as_dict(g)) for g in as_list(remote.get("gpus"))]
    return {
        "label": label,
        "offset": _offset_text(remote.get("clock_offset_s"), remote.get("clock_uncertainty_s")),
        # Not flagged: a remote host is not the generator's (the generator is checked on its own).
        "usage": _usage_rows(as_dict(remote.get("host")), rs if isinstance(rs, dict) else None, {}),
        "gpus": _gpu_columns(gpus),
    }


def resources_markdown(resources: dict[str, Any]) -> list[str]:
    """A few bullets: the server process, each GPU, energy per request, generator saturation."""
    if not resources.get("sampled"):
        return []
    items = []
    generator = as_dict(resources.get("generator"))
    if generator.get("saturated") is True:
        items.append(f"**Warning:** {md(saturation_text(generator))}")
    server = as_dict(resources.get("server_process"))
    if server:
        cpu, rss = as_dict(server.get("cpu_percent")), as_dict(server.get("rss_bytes"))
        items.append(
            f"server process: CPU mean {format_percent(cpu.get('mean'))} / max {format_percent(cpu.get('max'))} "
            f"of one core, RSS max {format_bytes(rss.get('max'))}"
        )
    for name, g in all_gpus(resources):
        model = f" ({md(g['name'])})" if g.get("name") else ""
        used, total = num(g.get("mem_used_max_mib")), num(g.get("mem_total_mib"))
        memory = (
            DASH if used is None else f"{used:,.0f}" + ("" if total is None else f" / {total:,.0f}") + " MiB"
        )
        items.append(
            f"{md(name)}{model}: util mean {format_percent(g.get('util_mean'))}, memory max {memory}"
        )
    energy = as_dict(resources.get("energy"))
    if num(energy.get("j_per_request")) is not None:
        items.append(
            f"GPU energy: {format_joules(energy.get('j_per_request'))} per request "
            f"({format_joules(energy.get('j_total'))} in total)"
        )
    return ["", "**Resources**", "", *(f"- {i}" for i in items)] if items else []
