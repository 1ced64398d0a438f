"""``--distinct K``: K bodies made from a few, varied only where a server does not check the form,
and the key that names each body (``payload_key``)."""

from __future__ import annotations

import hashlib

import pytest

from loadbench.errors import UsageError
from loadbench.protocols.variety import distinct_bodies, payload_key, vary

V2 = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [0.5, 1.0, 2.0]}],
    "parameters": {"n": 4},
}


def test_the_key_is_the_sha256_of_the_canonical_json() -> None:
    body = {"b": [1, 2], "a": "é"}
    canonical = b'{"a":"\\u00e9","b":[1,2]}'  # json.dumps's defaults: ASCII, escapes
    assert payload_key(body) == hashlib.sha256(canonical).hexdigest()[:12]
    assert payload_key({"a": "é", "b": [1, 2]}) == payload_key(body)  # key order does not count
    assert payload_key(b"\x00raw") == hashlib.sha256(b"\x00raw").hexdigest()[:12]
    assert len(payload_key([1])) == 12


def test_k_distinct_bodies_cycle_the_rows_and_start_with_them() -> None:
    rows = [{"prompt": "one"}, {"prompt": "two"}]
    bodies = distinct_bodies(rows, 5)
    assert bodies[:2] == rows
    assert [b["prompt"] for b in bodies[2:]] == ["one (variant 1)", "two (variant 1)", "one (variant 2)"]
    assert len({payload_key(b) for b in bodies}) == 5
    assert rows == [{"prompt": "one"}, {"prompt": "two"}]  # the rows themselves untouched
    assert distinct_bodies(rows, 1) == rows[:1]


def test_a_chat_body_varies_its_last_user_text_only() -> None:
    body = {
        "model": "m",
        "max_tokens": 8,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "last"}]},
        ],
    }
    varied = vary(body, 3)
    assert varied["messages"][3]["content"][0]["text"] == "last (variant 3)"
    assert varied["messages"][:3] == body["messages"][:3]
    assert {k: v for k, v in varied.items() if k != "messages"} == {"model": "m", "max_tokens": 8}


def test_a_tensor_body_moves_one_number_by_a_tiny_amount() -> None:
    varied = vary(V2, 2)
    tensor = varied["inputs"][0]
    assert tensor["data"][0] == pytest.approx(0.5 + 2e-6) and tensor["data"][1:] == [1.0, 2.0]
    assert {k: tensor[k] for k in ("name", "datatype", "shape")} == {
        "name": "x",
        "datatype": "FP32",
        "shape": [1, 3],
    }
    assert varied["parameters"] == {"n": 4}
    # Integers stay integers: one moves by 1, each in turn.
    ints = {"instances": [[3, 0], [7, 1]]}
    assert [vary(ints, v)["instances"] for v in (1, 2, 4, 5)] == [
        [[4, 0], [7, 1]],
        [[3, 1], [7, 1]],
        [[3, 0], [7, 2]],
        [[5, 0], [7, 1]],
    ]
    assert vary({"inputs": {"x": [1.5]}}, 1)["inputs"]["x"][0] == pytest.approx(1.5 + 1e-6)
    # Another API's body: its numbers wherever they are, else its first top-level text.
    assert vary({"model": "m", "features": {"age": 40}}, 1) == {"model": "m", "features": {"age": 41}}
    assert vary({"model": "m", "text": "hi"}, 2) == {"model": "m", "text": "hi (variant 2)"}


@pytest.mark.parametrize(
    "body",
    [{}, {"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}, [1, 2], "text"],
)
def test_a_body_without_text_or_numbers_to_vary_is_one_line(body: object) -> None:
    with pytest.raises(UsageError, match="--distinct: payload 1 has no text or numbers to vary"):
        distinct_bodies([body], 2)
    assert distinct_bodies([body], 1) == [body]  # the row itself needs no variant


def test_k_below_one_is_refused() -> None:
    with pytest.raises(UsageError, match="at least 1"):
        distinct_bodies([{"prompt": "x"}], 0)
