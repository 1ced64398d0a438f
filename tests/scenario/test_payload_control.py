"""`Payloads` under ``--distinct``/``--popularity`` (keys, labels kept, draws) and the LLM scenarios'
shared prefix. Locust is imported in a child process only (it patches the standard library)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import argparse, json, sys
from collections import Counter
from loadbench.protocols.variety import payload_key
from loadbench.protocols.workloads import Workload, WorkItem
from loadbench.scenario.helpers import PAYLOAD_KEY_META, Payloads, add_request_options
from loadbench.scenario.labels import request_extras
from loadbench.scenario.llm import LLMSetup, next_request

parser = argparse.ArgumentParser()
add_request_options(parser)
out = {}
opts = parser.parse_args(["--data", sys.argv[1], "--distinct", "5", "--popularity", "repeat:0.5", "--seed", "3"])
p = Payloads.from_options(opts)
out["bodies"] = [body for body, _ in p.items]
out["expected"] = [meta.get("_expected") for _, meta in p.items]
out["keys_match"] = all(meta[PAYLOAD_KEY_META] == payload_key(body) for body, meta in p.items)
out["extras"] = request_extras(p.items[2][1])
out["draws"] = [p.items.index(p.next()) for _ in range(12)]
q = p.with_bodies([{"wrapped": body} | meta for body, meta in p.items])
out["rewrapped_keys"] = [meta[PAYLOAD_KEY_META] == payload_key(body) for body, meta in q.items]
out["rewrapped_draws"] = [q.items.index(q.next()) for _ in range(12)]
plain = Payloads.from_options(parser.parse_args(["--data", sys.argv[1]]))
out["plain_meta"] = [meta for _, meta in plain.items]
out["plain_order"] = [plain.next()[0]["x"] for _ in range(3)]

def llm(kind, **setup):
    s = LLMSetup(kind, "m", Workload(prompt="hello"), **setup)
    return [next_request(s)[0] for _ in range(2)], next_request(s)[1]

out["chat"], out["chat_key"] = llm("chat", prefix="alpha beta", nonce=True)
out["completions"], _ = llm("completions", prefix="alpha beta", nonce=True, keyed=True)
out["keyed"] = llm("chat", prefix="alpha beta", keyed=True)
print(json.dumps(out))
"""


def test_payloads_under_distinct_and_popularity_and_the_llm_shared_prefix(tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text('{"x": [1.5], "_expected": "a"}\n{"x": [2.5], "_expected": "b"}\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [b["x"][0] for b in out["bodies"]] == [1.5, 2.5, 1.5 + 1e-6, 2.5 + 1e-6, 1.5 + 2e-6]
    assert out["expected"] == ["a", "b", "a", "b", "a"]  # each variant keeps its row's label
    assert out["keys_match"] and set(out["extras"]) == {"expected", "payload_key"}
    draws = out["draws"]
    assert draws[0] == 0 and set(draws) <= set(range(5))
    assert out["rewrapped_keys"] == [True] * 5 and out["rewrapped_draws"] == draws  # same seed, same picks
    assert out["plain_meta"] == [{"_expected": "a"}, {"_expected": "b"}]  # no keys unless asked
    assert out["plain_order"] == [[1.5], [2.5], [1.5]]
    first, second = out["chat"]
    assert first["messages"][0] == {"role": "system", "content": "alpha beta"}
    assert (
        first["messages"][1]["content"].endswith("] hello") and first["messages"][1] != second["messages"][1]
    )
    assert out["chat_key"] is None  # not keyed
    a, b = (body["prompt"] for body in out["completions"])
    assert a.startswith("alpha beta\n\n[") and a.endswith("] hello") and a != b
    bodies, key = out["keyed"]
    assert bodies[0] == bodies[1] and bodies[0]["messages"][1]["content"] == "hello"  # no nonce
    assert key == json.loads(json.dumps(key))
