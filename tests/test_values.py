"""Tests of loadbench.values (durations, headers, target URLs) and of `RunConfig`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from loadbench.drive.config import RunConfig
from loadbench.errors import LoadbenchError, TargetError, UsageError
from loadbench.values import (
    DEFAULT_MAX_BODY_BYTES,
    check_target,
    format_size,
    parse_duration,
    parse_header,
    parse_redirects,
    parse_size,
    server_time_header,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("30s", 30.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1h2m3s", 3723.0),
        ("1s500ms", 1.5),
        ("1.5s", 1.5),
        ("0.25m", 15.0),
        ("  45S  ", 45.0),
        ("10MS", 0.01),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        "3x",
        "-1",
        "-1s",
        "1s2",
        "s",
        "ms",
        "1 s",
        "1s 2m",
        "inf",
        "-inf",
        "nan",
        "1e999",
        "1.s",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="bad duration") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, LoadbenchError)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("Authorization: Bearer abc", ("Authorization", "Bearer abc")),
        ("X-Api-Key:k", ("X-Api-Key", "k")),
        ("  Accept :  application/json  ", ("Accept", "application/json")),
        ("X-Empty:", ("X-Empty", "")),
        ("X-Url: http://host:8000/x", ("X-Url", "http://host:8000/x")),
    ],
)
def test_parse_header(text: str, parsed: tuple[str, str]) -> None:
    assert parse_header(text) == parsed


@pytest.mark.parametrize("text", ["", "NoColon", ": value", "Bad Name: v", "Bad(Name): v", "Ä: v", "  : v"])
def test_parse_header_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="bad header"):
        parse_header(text)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("https://models.example.com/api/v1///", "https://models.example.com/api/v1"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("http://user:pw@host", "http://user:pw@host"),
    ],
)
def test_check_target_accepts_http_urls(url: str, expected: str) -> None:
    assert check_target(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/file", "is not an http:// or https:// URL"),
        ("localhost:8000", "is not an http:// or https:// URL"),
        ("127.0.0.1:8000", "is not an http:// or https:// URL"),
        ("http://", "is not an http:// or https:// URL"),
        ("http:///path", "is not an http:// or https:// URL"),
        ("", "is not an http:// or https:// URL"),
        ("http://host:99999", "invalid port"),
        ("http://host:port", "invalid port"),
    ],
)
def test_check_target_rejects(url: str, message: str) -> None:
    with pytest.raises(TargetError, match=message) as info:
        check_target(url)
    assert repr(url) in str(info.value)


def test_run_config_defaults_are_independent() -> None:
    a, b = RunConfig(target="http://a"), RunConfig(target="http://b")
    a.headers.append("X: 1")
    assert b.headers == []
    assert (a.users, a.duration_s, a.warmup_s, a.reports_dir) == (10, 30.0, 2.0, Path("reports"))
    assert not isinstance(UsageError("x"), TargetError)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8388608", 8 * 1024 * 1024),
        ("512KiB", 512 * 1024),
        ("10MB", 10_000_000),
        ("10mb", 10_000_000),
        ("1.5GiB", 1536 * 1024 * 1024),
        (" 8 MiB ", DEFAULT_MAX_BODY_BYTES),
        ("1k", 1000),
        ("1", 1),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "x", "-1", "0", "0.1", "10XB", "MB", "1e6", "10 MB extra"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="bad size"):
        parse_size(text)


def test_format_size_says_binary_units_only_when_exact() -> None:
    assert (format_size(DEFAULT_MAX_BODY_BYTES), format_size(512 * 1024), format_size(10_000_000)) == (
        "8 MiB",
        "512 KiB",
        "10,000,000 bytes",
    )
    assert format_size(1) == "1 byte"


@pytest.mark.parametrize(("text", "hops"), [("0", 0), ("5", 5), ("100", 100)])
def test_parse_redirects(text: str, hops: int) -> None:
    assert parse_redirects(text) == hops


@pytest.mark.parametrize("text", ["-1", "101", "x", "2.5"])
def test_parse_redirects_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="use 0 to 100"):
        parse_redirects(text)


@pytest.mark.parametrize(
    ("text", "spec"),
    [("X-Service-Time-Ms", "X-Service-Time-Ms"), (" Server-Timing:infer ", "Server-Timing:infer")],
)
def test_server_time_header(text: str, spec: str) -> None:
    assert server_time_header(text) == spec


@pytest.mark.parametrize("text", ["", "A:", ":infer", "X Time", "a:b:c", "Authorization: Bearer sk-s3cret"])
def test_server_time_header_rejects_without_echoing(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="use a header name") as caught:
        server_time_header(text)
    assert "s3cret" not in str(caught.value)


def test_a_replica_header_is_a_header_name_and_a_bad_one_is_not_echoed() -> None:
    import argparse

    from loadbench.values import header_name

    assert header_name(" X-Served-By ") == "X-Served-By"
    for bad in ("", "X Served", "Authorization: Bearer s3cret", "a:b"):
        with pytest.raises(argparse.ArgumentTypeError) as caught:
            header_name(bad)
        assert "s3cret" not in str(caught.value)
