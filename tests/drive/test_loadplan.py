"""Tests of loadbench.drive.loadplan: `plan_load` (closed or open loop, rate, trace, shape, checks) and
the plan's schedule and ``settings.load``. Pure: no Locust, no I/O beyond the files written here."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from loadbench.drive.config import RunConfig
from loadbench.drive.loadplan import MAX_INFLIGHT_LIMIT, LoadPlan, plan_load
from loadbench.errors import UsageError
from loadbench.load.arrivals import Arrival
from loadbench.load.shapes import Stage

ROOT = Path(__file__).resolve().parents[2]


def _config(**kwargs: Any) -> RunConfig:
    return RunConfig(target="http://127.0.0.1:9", **kwargs)


def _trace(tmp_path: Path, offsets: list[float], name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text("offset_s,output_tokens\n" + "".join(f"{t},{i}\n" for i, t in enumerate(offsets)))
    return path


def _times(plan: LoadPlan, config: RunConfig) -> list[float]:
    """The due times of a plan without a trace (a trace plan gives its rows)."""
    times = list(plan.offsets(config))
    assert all(type(t) is float for t in times)
    return cast(list[float], times)


def test_the_planning_modules_do_not_import_locust() -> None:
    """Importing locust monkey-patches the standard library (gevent): the analyzer and these
    tests import the planning modules, so they must stay free of it."""
    code = (
        "import sys\n"
        "import loadbench.load.arrivals, loadbench.analyze.trust, loadbench.drive.loadplan\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent', 'geventhttpclient'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


# --- plan_load: the load model ------------------------------------------------------------------


def test_closed_loop_by_default() -> None:
    plan = plan_load(_config(duration_s=30.0, seed=1))
    assert (plan.model, plan.duration_s, plan.stages, plan.trace, plan.seed, plan.notes) == (
        "closed",
        30.0,
        [],
        None,
        1,
        [],
    )


def test_a_rate_makes_it_open_loop() -> None:
    plan = plan_load(_config(rate=50.0, duration_s=10.0, seed=2))
    assert (plan.model, plan.duration_s, plan.stages, plan.trace, plan.seed) == ("open", 10.0, [], None, 2)


def test_a_trace_makes_it_open_loop_and_sets_the_duration(tmp_path: Path) -> None:
    path = _trace(tmp_path, [3.0, 0.0, 1.5, 4.0])
    plan = plan_load(_config(trace=path, trace_scale=0.5, duration_s=600.0, warmup_s=0.5, seed=3))
    assert plan.model == "open"
    assert plan.trace == [
        Arrival(0.0, None, 1),
        Arrival(0.75, None, 2),
        Arrival(1.5, None, 0),
        Arrival(2.0, None, 3),
    ]
    assert plan.duration_s == pytest.approx(2.001)  # just after the last request is due
    assert plan.notes == ["the trace sets the duration: 4 requests over 2.0 s"]


def test_a_closed_loop_shape_sets_stages_and_duration() -> None:
    plan = plan_load(_config(shape="step:1,3:2s", duration_s=600.0, warmup_s=0.0, seed=4))
    assert plan.model == "closed"
    assert plan.stages == [
        Stage("step 1: 1 user", 0.0, 2.0, 1.0, 1.0),
        Stage("step 2: 3 users", 2.0, 4.0, 3.0, 3.0),
    ]
    assert plan.duration_s == 4.0
    assert plan.notes == ["the load shape sets the duration: 4 s"]


def test_an_open_loop_shape_is_in_requests_per_second() -> None:
    plan = plan_load(_config(rate=1.0, shape="ramp:0.5-2.5:10s", warmup_s=1.0, seed=5))
    assert plan.model == "open"
    assert plan.stages == [Stage("ramp", 0.0, 10.0, 0.5, 2.5)]
    assert plan.duration_s == 10.0
    # The same shape in users: half a user is not a level.
    with pytest.raises(UsageError, match="not a whole number of users"):
        plan_load(_config(shape="ramp:0.5-2.5:10s", warmup_s=1.0))


def test_a_stages_file_sets_stages_and_duration(tmp_path: Path) -> None:
    path = tmp_path / "stages.csv"
    path.write_text("duration,rate\n5s,10\n10s,40\n")
    plan = plan_load(_config(rate=1.0, stages_file=path, seed=6))
    assert [(s.start_s, s.end_s, s.start_level) for s in plan.stages] == [(0.0, 5.0, 10.0), (5.0, 15.0, 40.0)]
    assert plan.duration_s == 15.0


def test_a_stages_file_of_rates_is_open_loop_without_rate(tmp_path: Path) -> None:
    rates = tmp_path / "rates.json"
    rates.write_text('[{"duration": "5s", "rate": 10}, {"duration": "5s", "rate": 20}]')
    plan = plan_load(_config(stages_file=rates, seed=6))
    assert plan.model == "open"
    assert [s.end_level for s in plan.stages] == [10.0, 20.0]
    assert plan.settings(_config(stages_file=rates))["model"] == "open"
    users = tmp_path / "users.csv"
    users.write_text("duration,users\n5s,4\n")
    assert plan_load(_config(stages_file=users)).model == "closed"


def test_a_seed_is_drawn_when_none_is_given() -> None:
    seeds = {plan_load(_config(rate=10.0)).seed for _ in range(5)}
    assert all(0 <= seed < 2**31 for seed in seeds)
    assert len(seeds) > 1


def test_closed_loop_ignores_the_open_loop_options() -> None:
    plan = plan_load(_config(arrival="nonsense", burstiness=-1.0, max_inflight=0))
    assert plan.model == "closed"


# --- plan_load: every bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0.0}, "--rate must be above 0 requests/s, not 0"),
        ({"rate": -5.0}, "--rate must be above 0 requests/s, not -5"),
        ({"rate": math.inf}, "--rate must be above 0 requests/s, not inf"),
        ({"rate": math.nan}, "--rate must be above 0 requests/s"),
        ({"rate": 10.0, "arrival": "uniform"}, "--arrival must be one of constant, poisson, gamma"),
        ({"rate": 10.0, "arrival": "gamma", "burstiness": 0.0}, "--burstiness must be above 0"),
        ({"rate": 10.0, "arrival": "gamma", "burstiness": math.inf}, "--burstiness must be above 0"),
        ({"rate": 10.0, "max_inflight": 0}, f"--max-inflight must be between 1 and {MAX_INFLIGHT_LIMIT:,}"),
        ({"rate": 10.0, "max_inflight": -1}, "--max-inflight must be between 1 and"),
        (
            {"rate": 10.0, "max_inflight": MAX_INFLIGHT_LIMIT + 1},
            "--max-inflight must be between 1 and 100,000",
        ),
        ({"shape": "step:1,2:5s", "stages_file": Path("stages.csv")}, "--shape or --stages, not both"),
        (
            {"rate": 5.0, "shape": "step:1,2:5s", "stages_file": Path("s.csv")},
            "--shape or --stages, not both",
        ),
        ({"shape": "zigzag:1-2:3s"}, "bad --shape 'zigzag:1-2:3s': unknown shape"),
        ({"duration_s": 2.0, "warmup_s": 2.0}, "--warmup (2 s) must be shorter than the run (2 s)"),
        ({"duration_s": 2.0, "warmup_s": 5.0}, "--warmup (5 s) must be shorter than the run (2 s)"),
        ({"shape": "step:1,2:1s", "warmup_s": 2.0}, "--warmup (2 s) must be shorter than the run (2 s)"),
        ({"duration_s": 0.0, "warmup_s": 0.0}, "--duration must be longer than 0 s"),
        ({"slos": ["p99<300ms", "p99 << 3"]}, "cannot read the SLO 'p99 << 3'"),
        ({"slos": ["lat<3s"]}, "unknown metric 'lat'"),
        ({"slos": ["latency>3s"]}, "the per-request SLO 'latency>3s' must be an upper bound"),
        ({"rate": 10.0, "slos": ["p99<3 parsecs"]}, "the SLO 'p99<3 parsecs' gives 'parsecs'"),
    ],
)
def test_bad_load_options_are_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        plan_load(_config(**kwargs))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"shape": "step:1,2:5s"},
            "--trace sets its own schedule: it does not combine with --shape or --stages",
        ),
        ({"stages_file": Path("stages.csv")}, "--trace sets its own schedule"),
        ({"arrival": "bursty"}, "--arrival must be one of"),  # checked for a trace too
        ({"max_inflight": 0}, "--max-inflight must be between 1 and"),
        ({"trace_scale": 0.0}, "--trace-scale must be above 0, not 0"),
        ({"warmup_s": 5.0}, "--warmup (5 s) must be shorter than the run (4.001 s)"),
    ],
)
def test_bad_trace_options_are_usage_errors(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    path = _trace(tmp_path, [0.0, 1.0, 4.0])
    with pytest.raises(UsageError) as caught:
        plan_load(_config(trace=path, **{"warmup_s": 0.0, **kwargs}))
    assert message in str(caught.value)


def test_a_missing_trace_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        plan_load(_config(trace=tmp_path / "nope.csv"))


def test_bad_slos_fail_before_anything_else_is_read(tmp_path: Path) -> None:
    # The SLO is checked first: the missing trace is not even opened.
    with pytest.raises(UsageError, match="SLO"):
        plan_load(_config(trace=tmp_path / "nope.csv", slos=["p99 ~ 3"]))


# --- LoadPlan.offsets ---------------------------------------------------------------------------


@pytest.mark.parametrize(("arrival", "burstiness"), [("constant", 1.0), ("poisson", 1.0), ("gamma", 0.5)])
def test_offsets_are_seeded_and_within_the_duration(arrival: str, burstiness: float) -> None:
    config = _config(rate=50.0, arrival=arrival, burstiness=burstiness, duration_s=5.0, seed=11)
    plan = plan_load(config)
    first = _times(plan, config)
    assert first == _times(plan_load(config), config)  # same seed, same schedule
    assert first == sorted(first)
    assert first[0] >= 0.0 and first[-1] < 5.0
    assert len(first) == pytest.approx(250, rel=0.25)
    if arrival == "constant":
        assert len(first) == 250
    else:
        other = _config(rate=50.0, arrival=arrival, burstiness=burstiness, duration_s=5.0, seed=12)
        assert _times(plan_load(other), other) != first


def test_offsets_follow_the_stages() -> None:
    config = _config(rate=1.0, arrival="constant", shape="step:10,30:2s", warmup_s=0.0, seed=1)
    offsets = _times(plan_load(config), config)
    assert offsets[-1] < 4.0
    assert sum(t < 2.0 for t in offsets) == 20
    assert sum(t >= 2.0 for t in offsets) == 60


def test_a_trace_plan_gives_the_traces_rows(tmp_path: Path) -> None:
    config = _config(trace=_trace(tmp_path, [0.0, 0.1, 0.15, 0.9, 3.0]), warmup_s=0.0, seed=1)
    plan = plan_load(config)
    rows = list(plan.offsets(config))  # with their token lengths, for the request bodies
    assert rows == [Arrival(t, None, i) for i, t in enumerate([0.0, 0.1, 0.15, 0.9, 3.0])]
    # A plan cut shorter than the trace sends only what is due within it.
    plan.duration_s = 1.0
    assert [a.offset_s for a in plan.offsets(config)] == [0.0, 0.1, 0.15, 0.9]  # type: ignore[union-attr]


def test_a_hand_made_plan_at_the_configured_rate() -> None:
    config = _config(rate=4.0, arrival="constant")
    assert _times(LoadPlan("open", 1.0, seed=0), config) == [0.0, 0.25, 0.5, 0.75]


# --- LoadPlan.settings --------------------------------------------------------------------------


def test_settings_of_a_closed_loop_run() -> None:
    config = _config(users=25, seed=1)
    assert plan_load(config).settings(config) == {"model": "closed", "users": 25}


def test_settings_of_an_open_loop_constant_run() -> None:
    config = _config(rate=20.0, arrival="constant", burstiness=3.0, seed=5, max_inflight=64)
    assert plan_load(config).settings(config) == {
        "model": "open",
        "rate": 20.0,
        "arrival": "constant",
        "seed": 5,
        "max_inflight": 64,
    }


def test_settings_of_a_poisson_run_with_a_drawn_seed() -> None:
    config = _config(rate=20.0)
    plan = plan_load(config)
    assert plan.settings(config) == {
        "model": "open",
        "rate": 20.0,
        "arrival": "poisson",
        "seed": plan.seed,  # recorded, so the run can be repeated
        "max_inflight": 1000,
    }


def test_settings_of_a_gamma_run_include_the_burstiness() -> None:
    config = _config(rate=20.0, arrival="gamma", burstiness=0.25, seed=9)
    assert plan_load(config).settings(config) == {
        "model": "open",
        "rate": 20.0,
        "arrival": "gamma",
        "seed": 9,
        "max_inflight": 1000,
        "burstiness": 0.25,
    }


def test_settings_of_an_open_loop_shape_have_no_single_rate() -> None:
    config = _config(rate=1.0, arrival="constant", shape="step:10,30:2s", warmup_s=0.0, seed=1)
    settings = plan_load(config).settings(config)
    assert settings["rate"] is None
    assert settings["arrival"] == "constant"


def test_settings_of_a_trace_run(tmp_path: Path) -> None:
    path = _trace(tmp_path, [0.0, 1.0, 4.0], name="prod-trace.csv")
    config = _config(trace=path, trace_scale=0.5, arrival="gamma", burstiness=0.5, warmup_s=0.0, seed=8)
    assert plan_load(config).settings(config) == {
        "model": "open",
        "rate": None,
        "arrival": "trace",
        "seed": 8,
        "max_inflight": 1000,
        "trace": {"file": "prod-trace.csv", "requests": 3, "scale": 0.5},  # the name only, no path
    }
