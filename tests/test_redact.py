"""Tests of loadbench.redact: credentials never reach what loadbench writes or prints."""

from __future__ import annotations

import pytest

from loadbench.redact import (
    MASK,
    argv_secrets,
    is_secret_name,
    redact_argv,
    redact_header,
    redact_url,
    scrub,
    secret_values,
)

TOKEN = "sk-live-0123456789abcdef"


@pytest.mark.parametrize(
    "name",
    ["Authorization", "authorization", "Cookie", "X-Api-Key", "api_key", "token", "X-Auth-Token",
     "client_secret", "password", "passwd", "Proxy-Authorization", "session_id", "sig_signature"],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["Accept", "Content-Type", "User-Agent", "X-Request-Id", "model", "q"])
def test_harmless_names(name: str) -> None:
    assert not is_secret_name(name)


def test_url_password_is_masked_and_user_kept() -> None:
    assert redact_url("https://alice:hunter2@api.example.com:8443/v1?x=1") == (
        f"https://alice:{MASK}@api.example.com:8443/v1?x=1"
    )


def test_url_lone_user_token_is_masked() -> None:
    assert redact_url(f"https://{TOKEN}@api.example.com/") == f"https://{MASK}@api.example.com/"


def test_url_password_with_at_sign() -> None:
    out = redact_url("http://bob:p@ss@host/x")
    assert out == f"http://bob:{MASK}@host/x"
    assert "p@ss" not in out


def test_url_secret_query_params_masked_others_kept() -> None:
    out = redact_url(f"http://h/p?model=digits&api_key={TOKEN}&access_token=abc&page=2&sig=")
    assert TOKEN not in out
    assert "abc" not in out
    assert out == f"http://h/p?model=digits&api_key={MASK}&access_token={MASK}&page=2&sig="


def test_url_without_secrets_is_unchanged() -> None:
    for url in ("http://127.0.0.1:8000", "https://h/v2/models/digits/infer", "http://h/p?model=a&n=1#frag"):
        assert redact_url(url) == url


def test_unparseable_url_is_masked_whole() -> None:
    assert redact_url("http://[::1") == MASK


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Authorization: Bearer {TOKEN}", f"Authorization: {MASK}"),
        ("X-API-Key:abc", f"X-API-Key: {MASK}"),
        ("Cookie: session=1; other=2", f"Cookie: {MASK}"),
        ("Accept: application/json", "Accept: application/json"),
        ("Content-Type: text/plain", "Content-Type: text/plain"),
        ("not a header", f"not {MASK}"),  # no colon: what follows the name may be the credential
        (f"Authorization Bearer {TOKEN}", f"Authorization {MASK}"),
        (f"X-Api-Key={TOKEN}", f"X-Api-Key {MASK}"),
        ("Accept", "Accept"),
    ],
)
def test_redact_header(header: str, expected: str) -> None:
    assert redact_header(header) == expected


def test_redact_argv_header_flag_forms_and_urls() -> None:
    argv = [
        "run",
        "--target",
        "http://user:pw123@host:8000/base?token=tt&m=1",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        f"--header=X-Api-Key: {TOKEN}",
        "--header",
        "Accept: application/json",
        "--users",
        "4",
        f"url=https://h/x?api_key={TOKEN}",
    ]
    out = redact_argv(argv)
    assert out == [
        "run",
        "--target",
        f"http://user:{MASK}@host:8000/base?token={MASK}&m=1",
        "--header",
        f"Authorization: {MASK}",
        f"--header=X-Api-Key: {MASK}",
        "--header",
        "Accept: application/json",
        "--users",
        "4",
        f"url=https://h/x?api_key={MASK}",
    ]
    assert not any(TOKEN in a or "pw123" in a for a in out)
    assert argv[4] == f"Authorization: Bearer {TOKEN}"  # the input is not modified


def test_redact_argv_trailing_header_flag() -> None:
    assert redact_argv(["--header"]) == ["--header"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-H", f"Authorization: Bearer {TOKEN}"],
        ["run", f"-HAuthorization: Bearer {TOKEN}"],
    ],
)
def test_redact_argv_short_header_flag(argv: list[str]) -> None:
    out = redact_argv(argv)
    assert not any(TOKEN in a for a in out), out


def test_scrub_replaces_known_secrets_and_url_credentials() -> None:
    text = (
        f"HTTPError: 401 for url: http://svc:hunter2@h/p?api_key={TOKEN} - server said: "
        f"invalid token {TOKEN} (Bearer {TOKEN})"
    )
    out = scrub(text, [f"Bearer {TOKEN}", TOKEN, "hunter2"])
    assert TOKEN not in out
    assert "hunter2" not in out
    assert out == (
        f"HTTPError: 401 for url: http://svc:{MASK}@h/p?api_key={MASK} - server said: "
        f"invalid token {MASK} ({MASK})"
    )


def test_scrub_masks_url_credentials_without_known_secrets() -> None:
    assert (
        scrub("ConnectError: http://u:p4ss@h:1/x refused", [])
        == f"ConnectError: http://u:{MASK}@h:1/x refused"
    )
    assert scrub("plain text, nothing secret", ["", "absent"]) == "plain text, nothing secret"


def test_secret_values_collects_header_values_and_bearer_parts() -> None:
    values = secret_values(
        [f"Authorization: Bearer {TOKEN}", "X-Api-Key: shortkey", "Accept: application/json", "Cookie:  "],
        "http://127.0.0.1:8000",
    )
    assert f"Bearer {TOKEN}" in values
    assert TOKEN in values  # the bare token, which a server may echo alone
    assert "shortkey" in values
    assert "Bearer" not in values  # too short to be a secret part on its own
    assert "application/json" not in values
    assert "" not in values
    # Longest first, so scrub replaces "Bearer xyz" before "xyz".
    assert values == sorted(values, key=len, reverse=True)
    assert len(values) == len(set(values))


def test_secret_values_from_the_target_url() -> None:
    assert set(secret_values([], "http://user:pw-secret@h/?api_key=qk-1&model=m")) == {"pw-secret", "qk-1"}
    assert secret_values([], f"http://{TOKEN}@h/") == [TOKEN]
    assert secret_values([], "http://h:8000/") == []


def test_secret_values_then_scrub_end_to_end() -> None:
    secrets = secret_values([f"Authorization: Bearer {TOKEN}"], "http://u:pw-1234@h/")
    message = f"ConnectError: http://u:pw-1234@h/ rejected Bearer {TOKEN}; token {TOKEN}"
    out = scrub(message, secrets)
    assert TOKEN not in out and "pw-1234" not in out
    assert out.count(MASK) == 3


def test_redact_argv_masks_credential_options_but_not_look_alikes() -> None:
    argv = [
        "run",
        "--agent-token",
        "abc",
        "--api-key=xyz",
        "--max-tokens",
        "64",
        "--token",
        "t",
        "--model",
        "m",
    ]
    assert redact_argv(argv) == [
        "run", "--agent-token", "***", "--api-key=***", "--max-tokens", "64", "--token", "***", "--model", "m",
    ]  # fmt: skip


def test_redact_argv_masks_auth_options_and_server_api_keys() -> None:
    argv = ["vllm", "serve", "m", "--api-key", TOKEN, f"--auth={TOKEN}", "--no-auth", "--port", "8000"]
    assert redact_argv(argv) == [
        "vllm",
        "serve",
        "m",
        "--api-key",
        MASK,
        f"--auth={MASK}",
        "--no-auth",
        "--port",
        "8000",
    ]


def test_argv_secrets_collects_what_redact_argv_masks() -> None:
    argv = [
        "run", "--target", "http://u:pw-target@h:1/?api_key=qk-1234", "-H", f"Authorization Bearer {TOKEN}",
        "-H", "X-Key: hdr-secret", "--agent-token", "agent-1", "--api-key=key-2", "--path", "/p?token=pt-3",
        "--no-auth", "--port", "8000", "--model", "digits",
    ]  # fmt: skip
    found = argv_secrets(argv)
    for secret in ("pw-target", "qk-1234", TOKEN, "hdr-secret", "agent-1", "key-2", "pt-3"):
        assert secret in found, (secret, found)
    assert not {"8000", "digits", "--port", "Bearer", "u"} & set(found), found
    assert found == sorted(found, key=len, reverse=True)  # longest first: "Bearer x" before "x"


def test_scrub_leaves_too_short_secrets_alone() -> None:
    # A one-letter password must not turn every "a" of a message into ***.
    assert scrub("a bad port", ["a"]) == "a bad port"


def test_a_url_with_nothing_to_mask_is_kept_as_given() -> None:
    assert redact_url("onnx:///tmp/model.onnx") == "onnx:///tmp/model.onnx"
    assert scrub("target onnx:///tmp/m.onnx: no such file", []) == "target onnx:///tmp/m.onnx: no such file"
    assert redact_url("http://u:pw@h:1/p?api_key=k&a=1") == "http://u:***@h:1/p?api_key=***&a=1"
