"""Tests of loadbench.protocols.errorbody: the message of a model server's error answer."""

from __future__ import annotations

import json

import pytest

from loadbench.protocols.errorbody import (
    MAX_BODY_BYTES,
    MAX_MESSAGE_CHARS,
    retry_after_text,
    server_message,
)

FEATURES = "X has 4 features, but StandardScaler is expecting 64 features as input."


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("body", "said"),
    [
        # MLServer, Triton, TF Serving, TGI
        (_json({"error": f"ValueError: {FEATURES}"}), f"ValueError: {FEATURES}"),
        # OpenAI and vLLM: the message nested, beside type and code
        (
            _json({"error": {"message": "model 'x' not found", "type": "NotFound", "code": 404}}),
            "model 'x' not found",
        ),
        (_json({"object": "error", "message": "prompt too long", "code": 400}), "prompt too long"),
        # TorchServe: a code first, the message after it
        (_json({"code": 503, "type": "ServiceUnavailable", "message": "no worker"}), "no worker"),
        # FastAPI: a string detail, or the validation errors' list (loc: msg, three at most)
        (_json({"detail": "Not authenticated"}), "Not authenticated"),
        (
            _json(
                {"detail": [{"loc": ["body", "inputs", 0], "msg": "field required", "type": "missing"}] * 5}
            ),
            "body.inputs.0: field required; body.inputs.0: field required; body.inputs.0: field required (+2 more)",
        ),
        # Keys in any case; a key without text (a flag, a number) is passed over
        (_json({"Error": True, "Message": "busy"}), "busy"),
        (_json("just a JSON string"), "just a JSON string"),
        # JSON without a message key, and broken JSON: the first line of the text
        (_json({"status": "fail"}), '{"status": "fail"}'),
        (b'{"error": "cut', '{"error": "cut'),
        # Text: the first line that is not blank; HTML: the text, tags removed, entities decoded
        (b"\n\n  upstream connect error  \nreset reason: overflow", "upstream connect error"),
        (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body></body></html>", "502 Bad Gateway"),
        # Nothing to say: empty, blank, binary
        (b"", ""),
        (b" \n\t", ""),
        (b"\x89PNG\r\n\x1a\n\x00\x00", ""),
    ],
)
def test_the_message_of_an_error_body(body: bytes, said: str) -> None:
    assert server_message(body) == said


def test_an_html_page_is_read_as_text_only_when_it_is_html() -> None:
    page = b"<p>Service &amp; model <b>unavailable</b></p>"
    assert server_message(page, "text/html; charset=utf-8") == "Service & model unavailable"
    # A text body is the server's words as sent: markup in it is escaped by the reports.
    assert server_message(page, "text/plain") == page.decode()


def test_the_message_is_one_bounded_line_without_control_characters() -> None:
    message = "<script>alert(1)</script>\u202eexe.txt\x1b[2J\x00\x07 line\r\nbreak\u2028end " + "x" * 500
    said = server_message(_json({"error": message}))
    assert said.startswith("<script>alert(1)</script>\u202eexe.txt [2J line break end xxx")
    assert len(said) == MAX_MESSAGE_CHARS and said.endswith("…")
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in said)


def test_a_huge_body_is_read_only_in_part() -> None:
    huge = b"first line of a huge answer\n" + b"y" * (50 * MAX_BODY_BYTES)
    assert server_message(huge) == "first line of a huge answer"
    # A JSON body longer than the part read is cut: its text is what is left to say.
    cut = _json({"error": "z" * (2 * MAX_BODY_BYTES)})
    assert server_message(cut) == ('{"error": "' + "z" * MAX_MESSAGE_CHARS)[: MAX_MESSAGE_CHARS - 1] + "…"
    deep = b"[" * 100_000 + b"]" * 100_000  # nested too deep for the parser: text, not a crash
    assert server_message(deep).startswith("[[[")


def test_credentials_are_scrubbed_before_the_message_is_cut() -> None:
    secret = "sk-live-0123456789abcdef"
    body = _json({"error": "x" * (MAX_MESSAGE_CHARS - 10) + f" key {secret} is invalid"})
    said = server_message(body, secrets=[secret])
    assert "sk-live" not in said and len(said) <= MAX_MESSAGE_CHARS
    assert server_message(_json({"error": "see https://user:pw@host/x"})) == "see https://user:***@host/x"


def test_retry_after_as_sent() -> None:
    assert retry_after_text("120") == "120"
    assert retry_after_text(" Wed, 21 Oct 2026 07:28:00 GMT\r\n") == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert retry_after_text(None) == "" and retry_after_text(7) == ""
    assert len(retry_after_text("9" * 1000)) == 40
