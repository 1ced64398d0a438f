"""The summary's closing sections, from figures either analysis path computed: the resources of
the window, the SLOs' gates and the run's validity.

`loadbench.analyze.analyzer` computes the figures from the records in memory,
`loadbench.analyze.bounded` from a `loadbench.analyze.store.RecordStore`; both finish here, so the
two cannot drift apart in what they conclude from the same figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from loadbench.analyze import slo, trust
from loadbench.analyze.resources import ResourcesSection, compute_resources
from loadbench.analyze.trust import ValiditySection
from loadbench.analyze.window import RunSpan
from loadbench.record.salvage import RecordDamage

SCHEMA_VERSION = 1  # summary.json's ``schema``, whichever analyzer wrote it


def add_resources(summary: dict[str, Any], resources: ResourcesSection) -> None:
    """``summary["resources"]`` (`resources_section`), and the generator's saturation in the
    summary's notices."""
    summary["resources"] = resources
    generator = resources.get("generator")
    if generator is not None and generator["saturated"]:
        # compute_resources puts its saturation notice last
        summary["notices"].append(resources["notices"][-1])


def resources_section(
    span: RunSpan,
    samples: pd.DataFrame | None,
    sampler_info: dict[str, Any] | None,
    latency_by_second: pd.Series,
    ok: int,
    output_tokens: int | None,
) -> ResourcesSection:
    """``summary["resources"]``: the driver's notices (how the server process was or was not
    found) first, then the sampler's."""
    sampler_meta = span.meta.get("sampler")
    info = dict(sampler_info or {})
    info["notices"] = [*(sampler_meta or {}).get("notices", []), *info.get("notices", [])]
    return compute_resources(
        samples if samples is not None else pd.DataFrame(),
        info if (sampler_info or sampler_meta) else None,
        span.start,
        span.ended,
        latency_by_second,
        ok,
        output_tokens=output_tokens,
    )


def gated_counts(slos: list[slo.Slo], values: Mapping[str, int]) -> dict[str, int]:
    """Gated percentiles other than latency's, by summary path, with the number of values each
    rests on (``values``: by the path's first part, ``ttft_ms``: how many requests have one)."""
    out: dict[str, int] = {}
    for gate in slos:
        prefix = gate.path.split(".")[0]
        if not gate.per_request and prefix in values:
            out[gate.path] = int(values[prefix])
    return out


def validity_section(
    summary: dict[str, Any],
    load_model: str,
    total: int,
    slos: list[slo.Slo],
    counts: Mapping[str, int],
    damage: RecordDamage | None,
) -> ValiditySection:
    """``summary["validity"]``, its reasons and warnings added to the summary's notices.

    ``total``: the window's requests; ``counts``: `gated_counts`' ``values``.
    """
    validity = trust.validity(
        summary,
        load_model,
        [s.path.split(".")[-1] for s in slos if s.path.startswith("latency_ms.")],
        gated_counts(slos, counts),
    )
    if damage is not None and damage.warns:  # records lost inside the run: the figures miss them
        validity["warnings"] = [*validity.get("warnings", []), damage.notice()]
    if not validity["valid"]:
        summary["notices"].extend(f"INVALID: {reason}" for reason in validity["reasons"])
    summary["notices"].extend(f"WARNING: {warning}" for warning in validity.get("warnings", []))
    generator = summary["resources"].get("generator")
    if total and (generator is None or generator["cpu_max_percent"] is None):
        # Not a reason for INVALID (nothing says it was saturated), but VALID then means less.
        validity["unchecked"] = [
            "the load generator's CPU (no resource samples: --no-sampler, or the sampler failed)"
        ]
    return validity
