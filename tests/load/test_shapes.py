"""Tests of loadbench.load.shapes: --shape specs, stages files, levels over time, the Locust shape
class (in a subprocess: importing locust monkey-patches this process with gevent) and the
per-stage metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loadbench.analyze.stages import stage_summaries
from loadbench.errors import RunDirError, UsageError
from loadbench.load.shapes import (
    Stage,
    default_spawn_rate,
    level_at,
    parse_shape,
    peak_level,
    rate_function,
    read_stages,
    total_duration_s,
)

ROOT = Path(__file__).resolve().parents[2]


def _rows(stages: list[Stage]) -> list[tuple[str, float, float, float, float]]:
    return [(s.name, s.start_s, s.end_s, s.start_level, s.end_level) for s in stages]


# --- parse_shape --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "unit", "expected"),
    [
        ("ramp:10-100:60s", "users", [("ramp", 0, 60, 10, 100)]),
        ("ramp:0-50:1m", "users", [("ramp", 0, 60, 0, 50)]),
        ("RAMP: 100-10 :30", "users", [("ramp", 0, 30, 100, 10)]),  # ramps down too
        ("ramp:0.5-2.5:500ms", "rate", [("ramp", 0, 0.5, 0.5, 2.5)]),
        (
            "ramp:10-100:60s:5",  # 32.5 and 77.5 users round half up
            "users",
            [
                ("step 1: 10 users", 0, 12, 10, 10),
                ("step 2: 33 users", 12, 24, 33, 33),
                ("step 3: 55 users", 24, 36, 55, 55),
                ("step 4: 78 users", 36, 48, 78, 78),
                ("step 5: 100 users", 48, 60, 100, 100),
            ],
        ),
        (
            "ramp:10-100:60s:4",
            "rate",
            [
                ("step 1: 10 req/s", 0, 15, 10, 10),
                ("step 2: 40 req/s", 15, 30, 40, 40),
                ("step 3: 70 req/s", 30, 45, 70, 70),
                ("step 4: 100 req/s", 45, 60, 100, 100),
            ],
        ),
        (
            "step:10,20,40:30s",
            "users",
            [
                ("step 1: 10 users", 0, 30, 10, 10),
                ("step 2: 20 users", 30, 60, 20, 20),
                ("step 3: 40 users", 60, 90, 40, 40),
            ],
        ),
        ("step:1,0:2s", "users", [("step 1: 1 user", 0, 2, 1, 1), ("step 2: 0 users", 2, 4, 0, 0)]),
        (
            "step:50,12.5:1m",
            "rate",
            [("step 1: 50 req/s", 0, 60, 50, 50), ("step 2: 12.5 req/s", 60, 120, 12.5, 12.5)],
        ),
        ("step:7:10s", "users", [("step 1: 7 users", 0, 10, 7, 7)]),
        (
            "spike:20,200:60s:10s@30s",
            "users",
            [("before spike", 0, 30, 20, 20), ("spike", 30, 40, 200, 200), ("after spike", 40, 60, 20, 20)],
        ),
        (
            "spike:20,200:60s:10s",  # without @AT: centred
            "users",
            [("before spike", 0, 25, 20, 20), ("spike", 25, 35, 200, 200), ("after spike", 35, 60, 20, 20)],
        ),
        ("spike:5,50:1m:10s@0s", "rate", [("spike", 0, 10, 50, 50), ("after spike", 10, 60, 5, 5)]),
        ("spike:5,50:1m:10s@50s", "rate", [("before spike", 0, 50, 5, 5), ("spike", 50, 60, 50, 50)]),
        ("spike:5,50:10s:10s", "rate", [("spike", 0, 10, 50, 50)]),
    ],
)
def test_parse_shape(spec: str, unit: str, expected: list[tuple[str, float, float, float, float]]) -> None:
    assert _rows(parse_shape(spec, unit=unit)) == expected


@pytest.mark.parametrize(
    ("spec", "unit", "problem"),
    [
        ("", "users", "unknown shape ''"),
        ("sine:1-2:10s", "users", "unknown shape 'sine'"),
        ("ramp", "users", "a ramp is ramp:FROM-TO:DURATION"),
        ("ramp:10-100", "users", "a ramp is"),
        ("ramp:10-100:60s:5:1", "users", "a ramp is"),
        ("ramp:10:60s", "users", "are not FROM-TO"),
        ("ramp:a-100:60s", "users", "FROM 'a' is not a number >= 0"),
        ("ramp:10-x:60s", "users", "TO 'x' is not a number >= 0"),
        ("ramp:10--5:60s", "users", "TO '-5' is not a number >= 0"),
        ("ramp:1.5-3:60s", "users", "FROM '1.5' is not a whole number of users"),
        ("ramp:1-nan:60s", "rate", "TO 'nan' is not a number >= 0"),
        ("ramp:1-inf:60s", "rate", "TO 'inf' is not a number >= 0"),
        ("ramp:10-100:soon", "users", "DURATION 'soon' is not a duration"),
        ("ramp:10-100:0s", "users", "DURATION must be longer than 0 s"),
        ("ramp:10-100:-5s", "users", "DURATION '-5s' is not a duration"),
        ("ramp:10-100:60s:1", "users", "STEPS must be 2 to 1000, not 1"),
        ("ramp:10-100:60s:1001", "users", "STEPS must be 2 to 1000"),
        ("ramp:10-100:60s:2.5", "users", "STEPS '2.5' is not a whole number"),
        ("ramp:0-0:60s", "users", "every level is 0"),
        ("step:10,20", "users", "steps are step:L1,L2,...:DURATION"),
        ("step::30s", "users", "steps are"),
        ("step:10,,20:30s", "users", "level '' is not a number"),
        ("step:10,-1:30s", "rate", "level '-1' is not a number >= 0"),
        ("step:10,20.5:30s", "users", "not a whole number of users"),
        ("step:10:0", "users", "DURATION must be longer than 0 s"),
        ("step:0,0:5s", "rate", "every level is 0"),
        ("spike:20:60s:10s@30s", "users", "a spike is spike:BASE,PEAK"),
        ("spike:20,200,300:60s:10s", "users", "a spike is"),
        ("spike:20,200:60s", "users", "a spike is"),
        ("spike:20,200:60s:0s@30s", "users", "LENGTH must be longer than 0 s"),
        ("spike:20,200:60s:10s@soon", "users", "start AT 'soon' is not a duration"),
        ("spike:20,200:60s:10s@55s", "users", "the spike (10 s from 55 s) must end within DURATION (60 s)"),
        ("spike:20,200:10s:20s", "users", "LENGTH (20 s) must not exceed DURATION (10 s)"),
    ],
)
def test_parse_shape_rejects(spec: str, unit: str, problem: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_shape(spec, unit=unit)
    message = str(info.value)
    assert message.startswith(f"bad --shape {spec!r}: ")
    assert problem in message
    assert "ramp:FROM-TO:DURATION[:STEPS]" in message  # every message teaches the grammar
    assert "\n" not in message


def test_parse_shape_rejects_an_unknown_unit() -> None:
    with pytest.raises(ValueError, match="unit"):
        parse_shape("step:1:1s", unit="rps")


# --- levels over time ---------------------------------------------------------------------------


def test_level_at_interpolates_ramps_and_switches_at_boundaries() -> None:
    stages = [
        Stage("up", 0.0, 10.0, 0.0, 100.0),
        Stage("hold", 10.0, 20.0, 100.0, 100.0),
        Stage("down", 20.0, 30.0, 50.0, 10.0),
    ]
    expected = {
        -1.0: 0.0,  # before the load start: the first stage's start level
        0.0: 0.0,
        2.5: 25.0,
        9.999: pytest.approx(99.99),
        10.0: 100.0,  # a boundary belongs to the next stage
        19.999: 100.0,
        20.0: 50.0,
        25.0: 30.0,
        29.9: pytest.approx(10.4),
        30.0: None,  # the end of the last stage: the schedule is over
        31.0: None,
    }
    rate = rate_function(stages)
    for t, level in expected.items():
        assert level_at(stages, t) == level, t
        assert rate(t) == level, t
    assert total_duration_s(stages) == 30.0
    assert peak_level(stages) == 100.0


def test_level_at_of_parsed_shapes() -> None:
    spike = parse_shape("spike:20,200:60s:10s@30s", unit="rate")
    assert [level_at(spike, t) for t in (0, 29.99, 30, 39.99, 40, 59.99, 60)] == [
        20,
        20,
        200,
        200,
        20,
        20,
        None,
    ]
    ramp = parse_shape("ramp:10-100:60s", unit="users")
    assert [level_at(ramp, t) for t in (0, 30, 45, 60)] == [10, 55, 77.5, None]


def test_no_stages() -> None:
    assert level_at([], 0.0) is None
    assert rate_function([])(0.0) is None
    assert total_duration_s([]) == 0.0
    assert peak_level([]) == 0.0


def test_stage_to_dict_round_trips_through_json() -> None:
    stage = Stage("step 2: 20 users", 30.0, 60.0, 20.0, 20.0)
    data = json.loads(json.dumps(stage.to_dict()))
    assert data == {
        "name": "step 2: 20 users",
        "start_s": 30.0,
        "end_s": 60.0,
        "start_level": 20.0,
        "end_level": 20.0,
    }
    assert Stage(**data) == stage


@pytest.mark.parametrize(
    ("spec", "spawn_rate"),
    [
        ("step:10,20,40:30s", 20.0),  # the biggest jump: 20 -> 40
        ("step:40,10:30s", 40.0),  # from 0 at the start
        ("ramp:0-50:1m", 1.0),  # under a user per second: at least 1
        ("ramp:0-600:1m", 10.0),  # the slope
        ("spike:20,200:60s:10s@30s", 180.0),
    ],
)
def test_default_spawn_rate_reaches_each_level_within_a_second(spec: str, spawn_rate: float) -> None:
    assert default_spawn_rate(parse_shape(spec, unit="users")) == spawn_rate


# --- read_stages --------------------------------------------------------------------------------


def test_read_stages_json(tmp_path: Path) -> None:
    path = tmp_path / "stages.json"
    path.write_text(
        json.dumps(
            [
                {"duration": "30s", "users": 10},
                {"duration": 60, "users": 50, "ramp_from": 10},
                {"duration": "1m30s", "users": 0, "name": " pause "},
                {"duration": 0.5, "users": 1},
            ]
        )
    )
    assert _rows(read_stages(path, unit="users")) == [
        ("stage 1: 10 users", 0, 30, 10, 10),
        ("stage 2: 10-50 users", 30, 90, 10, 50),
        ("pause", 90, 180, 0, 0),
        ("stage 4: 1 user", 180, 180.5, 1, 1),
    ]


def test_read_stages_json_rate(tmp_path: Path) -> None:
    path = tmp_path / "stages"  # no suffix: told apart by the content
    path.write_text('[{"duration": "10s", "rate": 2.5}, {"duration": "10s", "rate": "100", "ramp_from": 0}]')
    assert _rows(read_stages(path, unit="rate")) == [
        ("stage 1: 2.5 req/s", 0, 10, 2.5, 2.5),
        ("stage 2: 0-100 req/s", 10, 20, 0, 100),
    ]


def test_read_stages_csv(tmp_path: Path) -> None:
    path = tmp_path / "stages.csv"
    # A BOM (spreadsheet export), spaces, a blank line, upper-case header, a quoted name.
    path.write_text(
        '\ufeffDuration, Rate ,name\n30s, 50,\n\n1m,100,"peak, sustained"\n10,0,\n', encoding="utf-8"
    )
    assert _rows(read_stages(path, unit="rate")) == [
        ("stage 1: 50 req/s", 0, 30, 50, 50),
        ("peak, sustained", 30, 90, 100, 100),
        ("stage 3: 0 req/s", 90, 100, 0, 0),
    ]


def test_read_stages_csv_ramp_from(tmp_path: Path) -> None:
    path = tmp_path / "stages.csv"
    path.write_text("duration,users,ramp_from\n20s,8,0\n20s,8,\n")
    assert _rows(read_stages(path, unit="users")) == [
        ("stage 1: 0-8 users", 0, 20, 0, 8),
        ("stage 2: 8 users", 20, 40, 8, 8),
    ]


@pytest.mark.parametrize(
    ("name", "content", "unit", "problem"),
    [
        ("s.json", "", "users", "is empty: give a JSON list like"),
        ("s.json", "  \n", "users", "is empty"),
        ("s.json", "[]", "users", "has no stages"),
        (
            "s.json",
            '[{"duration": "30s", "users": 10},\n {"duration": 30 "users": 5}]',
            "users",
            "line 2: bad JSON",
        ),
        ("s.json", '{"duration": "30s", "users": 10}', "users", "is not a JSON list of stages"),
        ("s.json", '[{"duration": "30s", "users": 10}, 5]', "users", "stage 2: not an object"),
        (
            "s.json",
            '[{"duration": "30s", "user": 10}]',
            "users",
            "stage 1: unknown key 'user' (known: duration",
        ),
        ("s.json", '[{"duration": "30s", "users": 10, "rate": 5}]', "users", "mixes users and rate"),
        (
            "s.json",
            '[{"duration": "1s", "users": 1}, {"duration": "1s", "rate": 5}]',
            "rate",
            "mixes users and rate",
        ),
        (
            "s.json",
            '[{"duration": "30s", "users": 10}]',
            "rate",
            "gives users but the run is open loop (--rate)",
        ),
        ("s.json", '[{"duration": "30s", "rate": 10}]', "users", "gives rate but the run is closed loop"),
        ("s.json", '[{"duration": "30s"}]', "users", "stage 1: no users: every stage needs a duration"),
        ("s.json", '[{"users": 3}]', "users", "stage 1: no duration"),
        (
            "s.json",
            '[{"duration": "soon", "users": 3}]',
            "users",
            "stage 1: duration 'soon' is not a duration",
        ),
        ("s.json", '[{"duration": [1], "users": 3}]', "users", "stage 1: duration [1] is not a duration"),
        ("s.json", '[{"duration": true, "users": 3}]', "users", "duration True is not a duration"),
        ("s.json", '[{"duration": 0, "users": 3}]', "users", "stage 1: duration must be longer than 0 s"),
        ("s.json", '[{"duration": "-5s", "users": 3}]', "users", "duration '-5s' is not a duration"),
        ("s.json", '[{"duration": 1, "users": -3}]', "users", "stage 1: users '-3' is not a number >= 0"),
        ("s.json", '[{"duration": 1, "users": 2.5}]', "users", "users '2.5' is not a whole number of users"),
        ("s.json", '[{"duration": 1, "users": true}]', "users", "users True is not a number"),
        ("s.json", '[{"duration": 1, "rate": "fast"}]', "rate", "rate 'fast' is not a number >= 0"),
        ("s.json", '[{"duration": 1, "rate": 1e999}]', "rate", "rate 'inf' is not a number >= 0"),
        ("s.json", '[{"duration": 1, "rate": 5, "ramp_from": -1}]', "rate", "ramp_from '-1' is not a number"),
        ("s.json", '[{"duration": 1, "rate": 5, "name": 7}]', "rate", "stage 1: name 7 is not text"),
        ("s.json", '[{"duration": 1, "rate": 0}, {"duration": 1, "rate": 0}]', "rate", "every level is 0"),
        ("s.csv", "duration,users\n", "users", "has no stages"),
        ("s.csv", "duration,users\n30s,10\n30s,abc\n", "users", "line 3: users 'abc' is not a number >= 0"),
        ("s.csv", "duration,users\n30s,10\n\n0s,5\n", "users", "line 4: duration must be longer than 0 s"),
        (
            "s.csv",
            "duration,users\n30s,10,extra\n",
            "users",
            "line 2: 3 fields, the header has 2 (duration,users)",
        ),
        ("s.csv", "time,users\n30s,10\n", "users", "line 1: unknown column 'time'; give a JSON list"),
        ("s.csv", "users\n10\n", "users", "line 1: a bad header"),
        ("s.csv", "duration,users,users\n1,1,1\n", "users", "line 1: a bad header"),
        ("s.csv", "duration,users,rate\n30s,10,\n30s,,5\n", "users", "mixes users and rate"),
        ("s.csv", "duration,rate\n30s,10\n", "users", "gives rate but the run is closed loop"),
        ("s.csv", "duration,users,rate\n30s,,\n", "users", "line 2: no users"),
        ("s.csv", 'duration,users,name\n30s,10,"unclosed\n', "users", "bad CSV"),
    ],
)
def test_read_stages_rejects(tmp_path: Path, name: str, content: str, unit: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UsageError) as info:
        read_stages(path, unit=unit)
    message = str(info.value)
    assert message.startswith(f"stages file {path}")
    assert problem in message
    assert "\n" not in message


def test_read_stages_rejects_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"stages file .*nope\.json does not exist"):
        read_stages(tmp_path / "nope.json", unit="users")
    with pytest.raises(UsageError, match="cannot read stages file"):
        read_stages(tmp_path, unit="users")  # a directory
    binary = tmp_path / "s.csv"
    binary.write_bytes(b"duration,users\n\xff\xfe,1\n")
    with pytest.raises(UsageError, match="cannot read stages file"):
        read_stages(binary, unit="users")


# --- stage_summaries ----------------------------------------------------------------------------

RUN_START = 1000.0
STAGES = [
    Stage("low", 0.0, 4.0, 10.0, 10.0).to_dict(),
    Stage("high", 4.0, 10.0, 20.0, 40.0).to_dict(),
    Stage("never reached", 10.0, 12.0, 5.0, 5.0).to_dict(),
]
# (offset from the run start, latency_ms, ok); the warmup ends at offset 2.
REQUESTS = [
    (0.5, 5.0, 1),  # warmup: in no stage's counts
    (1.99, 6.0, 0),  # warmup
    (2.0, 10.0, 1),  # low (the first measured instant)
    (3.0, 1.0, 0),  # low, an error: not in the latency figures
    (3.5, 30.0, 1),  # low
    (4.0, 20.0, 1),  # high (a boundary belongs to the next stage)
    (6.0, 40.0, 1),  # high
    (7.5, 2.0, 0),  # high, an error
    (7.9, 60.0, 1),  # high
]


def test_stage_summaries_by_hand() -> None:
    starts = [RUN_START + r[0] for r in REQUESTS]
    low, high, never = stage_summaries(
        starts,
        [r[1] for r in REQUESTS],
        [r[2] for r in REQUESTS],
        RUN_START,
        STAGES,
        RUN_START + 2.0,
        window_end_unix_s=RUN_START + 8.0,  # the run was interrupted at 8 s
    )
    assert low == {
        "name": "low",
        "start_s": 0.0,
        "end_s": 4.0,
        "start_level": 10.0,
        "end_level": 10.0,
        "measured_s": 2.0,  # 2..4: the first half was warmup
        "requests": 3,
        "ok": 2,
        "errors": 1,
        "error_rate": pytest.approx(1 / 3, abs=1e-6),
        "throughput_rps": 1.0,  # 2 ok / 2 s
        "request_rate_rps": 1.5,
        "latency_ms": {
            "p50": 20.0,
            "p90": 28.0,
            "p95": 29.0,
            "p99": 29.8,
            "p999": 29.98,
            "max": 30.0,
            "mean": 20.0,
            "min": 10.0,
        },
        "in_warmup": 0.5,
    }
    assert high["measured_s"] == 4.0  # 4..8: interrupted before its end at 10
    assert (high["requests"], high["ok"], high["errors"]) == (4, 3, 1)
    assert high["error_rate"] == 0.25
    assert high["throughput_rps"] == 0.75  # 3 ok / 4 s
    assert high["request_rate_rps"] == 1.0
    assert high["latency_ms"]["p50"] == 40.0
    assert high["latency_ms"]["mean"] == 40.0
    assert (high["start_level"], high["end_level"], high["in_warmup"]) == (20.0, 40.0, 0.0)
    # A stage the run never reached: no time measured, rates null (never NaN).
    assert never["measured_s"] == 0.0
    assert (never["requests"], never["error_rate"], never["throughput_rps"]) == (0, 0.0, None)
    assert never["latency_ms"]["p99"] is None
    json.dumps([low, high, never], allow_nan=False)


def test_stage_summaries_without_window_end_and_with_numpy_input() -> None:
    import numpy as np

    starts = np.array([RUN_START + r[0] for r in REQUESTS])
    lat = np.array([r[1] for r in REQUESTS])
    ok = np.array([r[2] for r in REQUESTS], dtype=np.int8)
    low, high, never = stage_summaries(starts, lat, ok, RUN_START, STAGES, RUN_START + 2.0)
    assert (low["measured_s"], high["measured_s"], never["measured_s"]) == (2.0, 6.0, 2.0)
    assert high["throughput_rps"] == 0.5  # 3 ok / 6 s planned
    assert never["throughput_rps"] == 0.0


def test_stage_summaries_of_a_stage_inside_the_warmup_and_of_no_requests() -> None:
    stages = [Stage("all warmup", 0.0, 2.0, 1.0, 1.0).to_dict(), Stage("rest", 2.0, 4.0, 1.0, 1.0).to_dict()]
    first, rest = stage_summaries([], [], [], RUN_START, stages, RUN_START + 3.0)
    assert (first["in_warmup"], first["measured_s"], first["throughput_rps"]) == (1.0, 0.0, None)
    assert (rest["in_warmup"], rest["measured_s"], rest["requests"], rest["throughput_rps"]) == (
        0.5,
        1.0,
        0,
        0.0,
    )


@pytest.mark.parametrize(
    "stage",
    [
        {"name": "x", "start_s": 0, "end_s": 1, "start_level": 1},
        {"name": "x", "start_s": "soon", "end_s": 1, "start_level": 1, "end_level": 1},
        {"name": "x", "start_s": 0, "end_s": float("nan"), "start_level": 1, "end_level": 1},
        "not a stage",
    ],
)
def test_stage_summaries_rejects_a_damaged_stage(stage: object) -> None:
    with pytest.raises(RunDirError, match=r"meta.json settings.stages\[0\] is not a stage"):
        stage_summaries([], [], [], RUN_START, [stage], RUN_START)  # type: ignore[list-item]


# --- the Locust shape (subprocesses: locust must not be imported into pytest) --------------------


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_shapes_does_not_import_locust_or_gevent() -> None:
    out = _python(
        """
        import sys
        import loadbench.load.shapes
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("locust", "gevent")))
        """
    )
    assert out.strip() == "[]"


def test_users_shape_class_ticks_follow_the_stages() -> None:
    out = _python(
        """
        import json, time
        from locust import LoadTestShape
        from loadbench.drive.shape import users_shape_class
        from loadbench.load.shapes import Stage, parse_shape

        stages = [*parse_shape("step:3,0,5:10s", unit="users"), Stage("ramp", 30.0, 40.0, 0.0, 9.0)]
        cls = users_shape_class(stages)
        shape = cls()
        assert isinstance(shape, LoadTestShape)
        ticks = {}
        for t in (0.0, 9.9, 10.0, 19.9, 20.0, 30.0, 31.0, 35.0, 36.7, 39.9, 40.0, 41.0):
            shape.start_time = time.perf_counter() - t  # Locust's run time: perf_counter - start_time
            ticks[t] = shape.tick()
        fixed = users_shape_class(stages, spawn_rate=2.5)()
        fixed.start_time = time.perf_counter() - 21
        print(json.dumps({"ticks": list(ticks.items()), "fixed": fixed.tick()}))
        """
    )
    data = json.loads(out)
    ticks = {t: (tuple(v) if v else v) for t, v in data["ticks"]}
    # Default spawn rate: the biggest jump, 0 -> 5 users.
    assert ticks == {
        0.0: (3, 5.0),
        9.9: (3, 5.0),
        10.0: (0, 5.0),  # a pause: 0 users is a level
        19.9: (0, 5.0),
        20.0: (5, 5.0),
        30.0: (0, 5.0),
        31.0: (1, 5.0),  # 0.9 rounds to 1
        35.0: (5, 5.0),  # 4.5 rounds half up
        36.7: (6, 5.0),  # 6.03
        39.9: (9, 5.0),
        40.0: None,  # after the last stage: Locust stops the load
        41.0: None,
    }
    assert data["fixed"] == [5, 2.5]
