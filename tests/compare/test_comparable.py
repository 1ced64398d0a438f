"""Which runs `loadbench compare` compares: another scenario or target is refused (`check_comparable`,
skipped by --force), an INVALID run is said in the verdict and fails a gate; and the verdict as
plain text for a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_compare import make_run, synthetic_records

from loadbench.compare.compare import check_comparable, compare_runs, parse_rule, target_key
from loadbench.compare.rundata import RunData, load_run
from loadbench.compare.verdict import verdict_line, verdict_text
from loadbench.errors import UsageError
from loadbench.record import rundir

BASE_TARGET = "http://127.0.0.1:8000/predict"


def run(tmp_path: Path, name: str, seed: int = 3, **meta: str) -> RunData:
    return load_run(make_run(tmp_path / name, synthetic_records(seed), **meta))


@pytest.mark.parametrize(
    ("meta", "fragments"),
    [
        ({"scenario": "openai_chat"}, ["scenario ('json_post' vs 'openai_chat')"]),
        ({"target": "http://10.0.0.9:8000/predict"}, ["target ('http://127.0.0.1:8000/predict' vs"]),
        ({"target": "http://127.0.0.1:8000/v1/chat/completions"}, ["target"]),
        (
            {"scenario": "openai_chat", "target": "http://10.0.0.9:9000/v1"},
            ["scenario ('json_post' vs 'openai_chat') and target"],
        ),
    ],
)
def test_another_scenario_or_target_is_refused(
    tmp_path: Path, meta: dict[str, str], fragments: list[str]
) -> None:
    base, other = run(tmp_path, "base"), run(tmp_path, "other", **meta)
    with pytest.raises(UsageError) as err:
        check_comparable(base, [base, other])
    message = str(err.value)
    assert "\n" not in message and "--force compares them anyway" in message and str(other.path) in message
    for fragment in fragments:
        assert fragment in message
    # Forced (the library does not check): compared, and the difference is a warning.
    warnings = "\n".join(compare_runs(base, other, resamples=50)["warnings"])
    assert "scenarios differ" in warnings or "targets differ" in warnings


def test_the_same_endpoint_on_another_port_or_scheme_is_comparable(tmp_path: Path) -> None:
    # The demo and local servers take a free port each run: the port does not make another target.
    base = run(tmp_path, "base")
    moved = run(tmp_path, "moved", target="https://127.0.0.1:41234/predict/")
    check_comparable(base, [moved])
    assert not any("targets differ" in w for w in compare_runs(base, moved, resamples=50)["warnings"])
    assert target_key("http://Model.Example:80/v1/") == ("model.example", "/v1")
    assert target_key(None) is None


def invalid_run(tmp_path: Path, name: str) -> RunData:
    path = make_run(tmp_path / name, synthetic_records(4))
    summary = rundir.read_json(path / rundir.SUMMARY)
    summary["validity"] = {"valid": False, "reasons": ["every request failed"]}
    rundir.write_json(path / rundir.SUMMARY, summary)
    return load_run(path)


def test_an_invalid_candidate_is_in_the_headline_and_fails_a_gate(tmp_path: Path) -> None:
    base, cand = run(tmp_path, "base"), invalid_run(tmp_path, "cand")
    plain = compare_runs(base, cand, resamples=50)
    assert plain["invalid"] == ["candidate"] and plain["passed"] is True  # no gate: nothing to fail
    assert "the candidate run is INVALID: every request failed" in plain["warnings"]
    headline = verdict_text(plain)
    assert headline.startswith("loadbench compare: ⚠️ ") and "candidate run INVALID" in headline, headline
    # As `loadbench run --slo`: a gate does not pass on an INVALID measurement.
    gated = compare_runs(base, cand, [parse_rule("p50>+10%")], resamples=50)
    assert gated["passed"] is False and gated["failed_rules"] == []
    assert verdict_text(gated).startswith("loadbench compare: ❌ gate not passed · candidate run INVALID")
    both = compare_runs(cand, cand, resamples=50)
    assert "base and candidate runs INVALID" in verdict_text(both)


def test_the_terminal_verdict_is_plain_text(tmp_path: Path) -> None:
    base, cand = (
        run(tmp_path, "base", seed=5),
        load_run(make_run(tmp_path / "cand", synthetic_records(6, latency_scale=1.5))),
    )
    result = compare_runs(base, cand, [parse_rule("p50>+10%")], resamples=100)
    assert verdict_text(result).endswith("· 1 gate failed: p50>+10%")
    assert "**" not in verdict_text(result) and "&gt;" not in verdict_text(result)
    # compare.md keeps its Markdown: bold, and the rule escaped for HTML in Markdown.
    assert verdict_line(result).startswith("**loadbench compare: ❌ worse**")
    assert verdict_line(result).endswith("p50&gt;+10%")


def test_a_run_whose_records_are_damaged_is_said_among_the_warnings(tmp_path: Path) -> None:
    base = run(tmp_path, "base")
    damaged = make_run(tmp_path / "damaged", synthetic_records(4))
    lines = (damaged / rundir.REQUESTS).read_text().splitlines(keepends=True)
    lines.insert(len(lines) // 2, "\0" * 40 + "\n")  # what a crash on a full disk leaves
    (damaged / rundir.REQUESTS).write_text("".join(lines))
    warnings = compare_runs(base, load_run(damaged), [])["warnings"]
    said = [w for w in warnings if "records are damaged" in w]
    assert len(said) == 1 and said[0].startswith(
        "the candidate run's records are damaged: requests.csv is damaged"
    )
    assert not [
        w for w in compare_runs(base, run(tmp_path, "clean", seed=4), [])["warnings"] if "damaged" in w
    ]
