"""The first contact with a target, in the protocol its URL names: HTTP (`loadbench.protocols.probe`)
or, for ``grpc://`` and ``grpcs://``, gRPC (`loadbench.protocols.v2grpc.discovery`).

`check_reachable` and `probe_target` take the same arguments as the HTTP probe's and add:

- a ``grpc://`` target is reached with ``ServerLive`` and probed as the Open Inference Protocol's
  gRPC service (scenario ``kserve_v2_grpc``);
- an ``http://`` target whose port answers no HTTP/1.1 (a gRPC server answers with HTTP/2
  frames, which the HTTP client reports as a broken answer) is asked ``ServerLive``; when a gRPC
  server answers, the error says so and names the ``grpc://`` target to give;
- an in-process target (``python://``, ``onnx://``: `loadbench.protocols.inprocess`) has no
  network: "reaching" it is loading it (a `UsageError` when it does not import or load), and
  its scenario is ``inprocess``.
"""

from __future__ import annotations

from loadbench.errors import TargetError
from loadbench.protocols import probe
from loadbench.protocols.inprocess import open_target
from loadbench.protocols.probe import ProbeResult
from loadbench.protocols.probehttp import PROBE_TIMEOUT_S
from loadbench.redact import redact_url
from loadbench.values import is_grpc_url, is_inprocess_url

INPROCESS_SCENARIO = "inprocess"

# The gRPC side is imported only for the targets that need it: grpcio is a large import that
# HTTP runs do without.


def check_reachable(
    base_url: str,
    headers: dict[str, str] | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    verify: bool = True,
    http2: bool = False,
) -> int | str:
    """HTTP: any answer to ``GET /`` (its status). gRPC: any answer to ``ServerLive`` (what it said).
    In-process: the model loaded (what was loaded)."""
    if is_inprocess_url(base_url):
        return open_target(base_url).described
    if is_grpc_url(base_url):
        from loadbench.protocols.v2grpc.discovery import check_grpc_reachable

        return check_grpc_reachable(base_url, headers, verify, timeout_s)
    try:
        return probe.check_reachable(base_url, headers, timeout_s, verify, http2)
    except TargetError as exc:
        if http2:
            raise
        grpc_url = _grpc_instead(base_url, exc)
        raise TargetError(
            f"target {redact_url(base_url)} answers in gRPC, not HTTP/1.1 (ServerLive answered there): "
            f"use --target {grpc_url} (the Open Inference Protocol over gRPC, scenario kserve_v2_grpc)"
        ) from None


def probe_target(
    base_url: str,
    headers: dict[str, str] | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    verify: bool = True,
    model: str | None = None,
    http2: bool = False,
) -> ProbeResult:
    """The scenario the target seems to want (`loadbench.protocols.probe.probe_target`'s rules, and
    ``kserve_v2_grpc`` for a gRPC target whose Open Inference Protocol service answers, ``inprocess``
    for an in-process one)."""
    if is_inprocess_url(base_url):
        return ProbeResult(INPROCESS_SCENARIO, f"{base_url} is called in this process", model)
    if is_grpc_url(base_url):
        from loadbench.protocols.v2grpc.discovery import probe_grpc

        scenario, reason = probe_grpc(base_url, headers, verify)
        return ProbeResult(scenario, reason, model)
    return probe.probe_target(base_url, headers, timeout_s, verify, model, http2)


def resolve_bare(
    host_port: str, headers: dict[str, str] | None = None, verify: bool = True
) -> tuple[str, str]:
    """A target given as ``HOST:PORT`` (`loadbench.values.bare_host_port`), as a URL: ``http://``
    when HTTP/1.1 answers there, ``grpc://`` when a gRPC server answers ``ServerLive`` (the
    HTTP client gets HTTP/2 frames it cannot read); (the URL, the one line that says which).
    Neither: the HTTP probe's `TargetError`, which says why."""
    url = f"http://{host_port}"
    try:
        status = probe.check_reachable(url, headers, PROBE_TIMEOUT_S, verify)
    except TargetError as exc:
        grpc_url = _grpc_instead(url, exc)
        return grpc_url, f"{host_port} answers gRPC (ServerLive): target {grpc_url}"
    return url, f"{host_port} answers HTTP/1.1 (GET / -> {status}): target {url}"


def _grpc_instead(http_url: str, failure: TargetError) -> str:
    """The ``grpc://`` URL of a cleartext ``http://`` target whose HTTP probe failed as unreachable
    (a gRPC server answers HTTP/1.1 with HTTP/2 frames) when gRPC's ``ServerLive`` answers there;
    else ``failure`` is raised again."""
    if not http_url.lower().startswith("http://") or "is unreachable" not in str(failure):
        raise failure
    from loadbench.protocols.v2grpc.discovery import answers_grpc

    grpc_url = answers_grpc(http_url)
    if grpc_url is None:
        raise failure
    return grpc_url
