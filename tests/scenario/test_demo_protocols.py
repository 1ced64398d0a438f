"""Every built-in scenario runs against the embedded demo (`loadbench run --demo`) with no errors.

The demo speaks every protocol loadbench speaks, so each scenario finds its model there as it
would on the real server (the probe's discovery, unchanged) and the labelled ones score what
``POST /predict`` scores. One short run per scenario, as a user types it; Locust stays in the
child process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DIGITS, REPO, run_cli

# The request name each scenario records (its path; with the method where --path sets it), and
# whether its requests carry the digits' labels (``--demo`` gives json_post, tfserving, kserve_v1
# and torchserve the labelled digits; json_template gets them below).
SCENARIOS = {
    "json_post": ("POST /predict", True),
    "json_template": ("POST /predict", True),
    "kserve_v1": ("/v1/models/digits:predict", True),
    "kserve_v2": ("/v2/models/digits/infer", False),
    "kserve_v2_grpc": ("/inference.GRPCInferenceService/ModelInfer", False),
    "tfserving": ("/v1/models/digits:predict", True),
    "torchserve": ("/predictions/digits", True),
    "openai_chat": ("/v1/chat/completions", False),
    "openai_completions": ("/v1/completions", False),
    "embeddings": ("/v1/embeddings", False),
    "asr": ("POST /asr", False),
}
# Each scenario's protocol, not the demo's throughput, is the subject: 5 ms of service time keeps
# each user to hundreds of requests instead of thousands (the demo serves in the same process, so
# unpaced it and Locust share a saturated core). Accuracy stays above 0.93 on any prefix of the
# digits, so fewer answers still clear the 0.9 below.
PACED = ("--demo-latency-ms", "5")
# json_template sends nothing without a template: one that fills /predict from the digits.
EXTRA_ARGS = {
    "json_template": [
        *("--data", str(DIGITS), "--template", '{"inputs": "{{inputs}}"}', "--extract", "predictions.0"),
    ],
    "openai_chat": ["--max-tokens", "4"],  # more requests in the short run
    "openai_completions": ["--max-tokens", "4"],
}


# Calls a model in loadbench's own process (python://, onnx://), never a server: tests/scenario/test_inprocess.py.
NOT_SERVED = ("inprocess",)


def test_every_built_in_scenario_is_covered() -> None:
    # Globbed here, as `loadbench scenarios` lists them: its module would bring Locust into pytest.
    shipped = sorted(
        p.stem
        for p in (REPO / "scenarios").glob("*.py")
        if not p.name.startswith("_") and p.stem not in NOT_SERVED
    )
    assert sorted(SCENARIOS) == shipped


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_runs_against_the_demo(tmp_path: Path, scenario: str) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "run", "--demo", "--scenario", scenario, "-u", "2", "-d", "1s", "--warmup", "0",
        "--no-sampler", "--quiet", "--out", str(out), *PACED, *EXTRA_ARGS.get(scenario, []),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    path, labelled = SCENARIOS[scenario]
    assert list(summary["by_name"]) == [path]
    assert summary["requests"]["total"] > 0
    assert summary["requests"]["errors"] == 0, summary["errors"]
    if labelled:
        # The same model behind every protocol: as accurate as /predict on these digits (> 0.9).
        assert summary["quality"]["answered"] == summary["requests"]["total"]
        assert summary["quality"]["accuracy"] > 0.9
