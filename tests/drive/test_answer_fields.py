"""What the recorder reads from answers beyond their status: the server's time from a JSON body
(``--server-time-field``) and what the server's cache said (``--cache-header``, ``--cache-field``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from loadbench.drive.answers import cache_in_value, cache_said, number_ms
from loadbench.record.records import read_requests


@pytest.mark.parametrize(
    ("value", "age", "said"),
    [
        ("HIT", False, "hit"),
        ("miss", False, "miss"),
        ("TCP_HIT", False, "hit"),
        ("Hit from cloudfront", False, "hit"),
        ("RefreshHit from cloudfront", False, "hit"),
        ("Miss from cloudfront", False, "miss"),
        ("TCP_REFRESH_MISS", False, "miss"),
        ("MISS, HIT", False, "hit"),  # two caches in a row: the one nearest the client answered
        ("HIT, MISS", False, "miss"),
        ("BYPASS", False, ""),
        ("", False, ""),
        (None, False, ""),
        ("0", True, "miss"),
        ("17", True, "hit"),
        ("soon", True, ""),
        ("-3", True, ""),
    ],
)
def test_a_cache_header_says_hit_or_miss(value: str | None, age: bool, said: str) -> None:
    assert cache_said(value, age=age) == said


def test_a_cache_field_says_hit_or_miss() -> None:
    assert [cache_in_value(v) for v in (True, False, "hit", "MISS", None, 1, {"a": 1})] == [
        "hit",
        "miss",
        "hit",
        "miss",
        "",
        "",
        "",
    ]


def test_a_servers_time_in_a_body_is_a_finite_number_of_ms() -> None:
    assert [number_ms(v) for v in (12, 0, 3.5, "7.25")] == [12.0, 0.0, 3.5, 7.25]
    assert [number_ms(v) for v in (-1, math.inf, math.nan, True, "soon", None, [1])] == [None] * 7


SCRIPT = r"""
import argparse, json, sys
from pathlib import Path
from locust import User
from locust.env import Environment
from loadbench.drive.recorder import Recorder

class Nobody(User):
    abstract = True

class Headers(dict):
    def get(self, name, default=None):  # names ignore case, as in the clients' header maps
        return next((v for k, v in self.items() if k.lower() == name.lower()), default)

class Answer:
    def __init__(self, status_code, headers, body):
        self.status_code = status_code
        self.headers = Headers(headers)
        self._content = body if isinstance(body, bytes) else json.dumps(body).encode()

answers = [
    Answer(200, {"X-Cache": "HIT", "X-Ms": "4"}, {"meta": {"ms": 2.5, "cached": True}}),
    Answer(200, {"X-Cache": "MISS"}, {"meta": {"ms": 30, "cached": False}}),
    Answer(200, {"Age": "12"}, {"meta": {"ms": -1, "cached": "hit"}}),
    Answer(200, {"Age": "0"}, b"not json"),
    Answer(500, {"X-Cache": "miss"}, {"meta": {"ms": 1}}),
    Answer(0, {"X-Cache": "HIT"}, {"meta": {"ms": 1, "cached": True}}),  # no answer came
    Answer(200, {}, {"predictions": [1]}),
]
for name, given in json.loads(sys.argv[2]).items():  # one run directory per set of options
    out = Path(sys.argv[1]) / name
    out.mkdir()
    env = Environment(user_classes=[Nobody], parsed_options=argparse.Namespace(**given))
    recorder = Recorder(out).register(env)
    for i, answer in enumerate(answers):
        env.events.request.fire(
            request_type="POST", name="/p", response_time=5.0, response_length=10, start_time=1.0 + i,
            response=answer, exception=None if 0 < answer.status_code < 400 else RuntimeError("failed"),
            context={},
        )
    recorder.close()
"""


RUNS = {
    "header": {"cache_header": "X-Cache"},
    "age": {"cache_header": "Age"},
    "age_and_field": {"cache_header": "Age", "cache_field": "meta.cached"},
    "time_field": {"server_time_field": "meta.ms"},
    "time_header_and_field": {"server_time_header": "X-Ms", "server_time_field": "meta.ms"},
}


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[list[str], list[float | None], list[int]]]:
    """Each of `RUNS`' sets of options, recorded in one child process (Locust patches the standard library)."""
    folder = tmp_path_factory.mktemp("answers")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), json.dumps(RUNS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = {}
    for name in RUNS:
        lines = (folder / name / "requests.csv").read_text(encoding="utf-8").splitlines()
        assert len({line.count(",") for line in lines}) == 1  # every line has every field
        frame = read_requests(folder / name / "requests.csv")
        server = [None if math.isnan(v) else v for v in frame["server_ms"]]
        out[name] = frame["cache"].astype("string").fillna("").tolist(), server, frame["ok"].tolist()
    return out


Recorded = dict[str, tuple[list[str], list[float | None], list[int]]]


def test_the_cache_header_and_field_fill_the_cache_column(recorded: Recorded) -> None:
    cache, server, ok = recorded["header"]
    assert cache == ["hit", "miss", "", "", "miss", "", ""]
    assert server == [None] * 7 and ok == [1, 1, 1, 1, 0, 0, 1]
    assert recorded["age"][0] == ["", "", "hit", "miss", "", "", ""]
    # The field where the header is absent; never from an answer that did not come.
    assert recorded["age_and_field"][0] == ["hit", "miss", "hit", "miss", "", "", ""]


def test_the_servers_time_from_a_json_field_where_the_header_is_absent(recorded: Recorded) -> None:
    cache, server, _ = recorded["time_field"]
    assert server == [2.5, 30.0, None, None, 1.0, None, None] and cache == [""] * 7
    assert recorded["time_header_and_field"][1] == [4.0, 30.0, None, None, 1.0, None, None]
