"""``--target HOST:PORT`` without a scheme, as gRPC users write a server's address: loadbench asks
what answers there (HTTP/1.1, else gRPC's ``ServerLive``), says so in one line and runs against
that URL; nothing there is one line, exit 2. Real demo servers as child processes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_servers import demo_grpc_process
from helpers import read_json, run_cli

QUICK = ("-u", "1", "-d", "1s", "--warmup", "0s", "--no-sampler")


def host_port(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[str, str]]:
    with demo_grpc_process(2.0) as urls:
        yield urls


@pytest.mark.e2e
@pytest.mark.parametrize("side", ["grpc", "http"])
def test_a_bare_host_port_runs_against_what_answers_there(
    demo: tuple[str, str], side: str, tmp_path: Path
) -> None:
    http_url, grpc_url = demo
    url = grpc_url if side == "grpc" else http_url
    out = tmp_path / "run"
    result = run_cli("run", "--target", host_port(url), "--model", "digits", *QUICK, "--out", str(out))
    assert result.returncode == 0, result.stderr
    said = "answers gRPC (ServerLive)" if side == "grpc" else "answers HTTP/1.1 (GET / -> "
    assert f"loadbench: {host_port(url)} {said}" in result.stderr
    meta = read_json(out / "meta.json")
    assert meta["target"] == url.rstrip("/")
    assert meta["scenario"] == ("kserve_v2_grpc" if side == "grpc" else "kserve_v2")
    assert read_json(out / "summary.json")["requests"]["errors"] == 0


def test_a_bare_host_port_where_nothing_listens_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "run"
    result = run_cli("run", "--target", f"127.0.0.1:{port}", *QUICK, "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"loadbench: error: target http://127.0.0.1:{port} is unreachable"
    )
    assert not out.exists()
