"""Tests of loadbench.protocols.sent (a request body's shape, shown short) and of
`loadbench.protocols.errorbody.escape_controls`, which both use to stay safe on a terminal."""

from __future__ import annotations

import json

import pytest

from loadbench.protocols.errorbody import escape_controls
from loadbench.protocols.sent import MAX_SHAPE_CHARS, body_shape


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        # A v2 tensor of 4 values: whole, so its shape and count can be read against the model's.
        (
            _json(
                {
                    "inputs": [
                        {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}
                    ]
                }
            ),
            '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[0.1,0.2,0.3,0.4]}]}',
        ),
        # 64 values: the first three and the count.
        (_json({"inputs": [[float(i) for i in range(64)]]}), '{"inputs":[[0.0,1.0,2.0,…64 values]]}'),
        # Rows of rows: the first and how many.
        (_json({"instances": [[1, 2], [3, 4], [5, 6]]}), '{"instances":[[1,2],…3 items]}'),
        # A long prompt: its start and length.
        (_json({"prompt": "word " * 100}), '{"prompt":"' + "word " * 8 + '…"(500 chars)}'),
        # Credentials in a body are text under a credential's name; a token count is not one.
        (_json({"api_key": "sk-abc", "max_tokens": 16}), '{"api_key":"***","max_tokens":16}'),
        (b"plain text body", "plain text body"),
        (b"RIFF\x00\x01\x02", "(7 bytes, binary)"),
        (b"\xff\xfe\xfd", "(3 bytes, binary)"),
        (b"", ""),
        (None, ""),
        ('{"a": 1}', '{"a":1}'),  # a client that keeps the body as text
    ],
    ids=["v2-4", "v2-64", "rows", "prompt", "secret-key", "text", "nul", "not-utf8", "empty", "none", "str"],
)
def test_body_shape(body: bytes | str | None, shown: str) -> None:
    assert body_shape(body) == shown


def test_body_shape_is_one_bounded_line_without_secrets_or_controls() -> None:
    body = _json({f"k{i}": "Bearer tok-123456\n\x1b[2Jx" for i in range(50)})
    shown = body_shape(body, secrets=["tok-123456"])
    assert len(shown) <= MAX_SHAPE_CHARS and "\n" not in shown and "\x1b" not in shown
    assert "tok-123456" not in shown and "Bearer ***" in shown
    assert body_shape("a\x1b[31mb\tc\nd\u202e".encode()) == "a\\x1b[31mb c d\\u202e"


def test_escape_controls_shows_what_a_terminal_would_obey() -> None:
    assert (
        escape_controls("ok\x1b[2J\x07\x00\x7f\x9b\u202eend\u2066")
        == "ok\\x1b[2J\\x07\\x00\\x7f\\x9b\\u202eend\\u2066"
    )
    assert escape_controls("tab\tnew\nline é ✓ <script>") == "tab\tnew\nline é ✓ <script>"
