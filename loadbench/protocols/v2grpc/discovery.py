"""Discovery over gRPC before any load: is the port gRPC, what serves there, which model, what it takes.

- `check_grpc_reachable`: ``ServerLive`` once; any answer of a gRPC server (``UNIMPLEMENTED``
  included) is reachable. A port that answers in HTTP/1.1 is named as such, with the fix
  (``http://``); so are a refused connection, a certificate that cannot be verified
  (``--insecure``), a TLS port given as ``grpc://`` and the reverse.
- `probe_grpc`: what the probe says about a ``grpc://`` target (``ServerLive``, ``ServerMetadata``).
- `find_grpc_model`: the first READY model of ``RepositoryIndex`` (Triton, MLServer); KServe's
  base service has no such method: ``UNIMPLEMENTED`` asks for ``--model``.
- `grpc_model_metadata`: ``ModelMetadata`` in the JSON shape of ``GET /v2/models/<model>``; an
  unknown model is one line naming ``--model``.
- `answers_grpc`: whether an ``http://`` target whose HTTP/1.1 probe got no HTTP answer is a gRPC
  port (the probe then says to use ``grpc://``).

Each is a handful of calls on a channel of its own, closed after. Errors are `TargetError`, one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import urlsplit

import grpc
import httpx
from google.protobuf.message import Message

from loadbench.errors import TargetError
from loadbench.protocols.bodies import V2_EXAMPLE, v2_inputs
from loadbench.protocols.errorbody import token_header_hint
from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.protocols.v2grpc import repository_index_pb2 as ri
from loadbench.protocols.v2grpc.service import (
    MODEL_METADATA,
    REPOSITORY_INDEX,
    SERVER_LIVE,
    SERVER_METADATA,
    GrpcTarget,
    Method,
    call_metadata,
    client_made,
    grpc_target,
    open_channel,
    unary,
)
from loadbench.protocols.v2grpc.tensors import metadata_json

PROBE_TIMEOUT_S = 5.0
HINT_TIMEOUT_S = 2.0  # the http:// probe's question "is it gRPC?": a gRPC port answers at once
GRPC_SCENARIO = "kserve_v2_grpc"

Reply = TypeVar("Reply", bound=Message)


def _ask(
    target: GrpcTarget,
    method: Method,
    request: Message,
    reply: type[Reply],
    headers: Mapping[str, str] | None,
    verify: bool,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> Reply:
    """One call on a channel of its own; ``grpc.RpcError`` when it fails, `TargetError` when the
    certificate cannot even be fetched (``--insecure`` over TLS)."""
    try:
        channel = open_channel(target, verify)
    except OSError as exc:
        raise TargetError(f"target {target.url} is unreachable: {exc.strerror or exc}") from None
    with channel:
        return unary(channel, method, request, reply, timeout_s, call_metadata(headers))


def _http_status(target: GrpcTarget) -> int | None:
    """The HTTP status a plain HTTP/1.1 ``GET /`` to the target's port gets, None when none comes."""
    scheme = "https" if target.tls else "http"
    try:
        with httpx.Client(timeout=HINT_TIMEOUT_S, trust_env=False, verify=False) as client:
            return client.get(f"{scheme}://{target.address}/").status_code
    except httpx.HTTPError:
        return None


def unreachable(target: GrpcTarget, what: str, error: grpc.RpcError, timeout_s: float) -> TargetError:
    """The one line for a call the server never answered (see the module docstring)."""
    code, details = error.code(), str(error.details() or "")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TargetError(f"target {target.url} did not answer {what} within {timeout_s:g} s")
    http = f"{'https' if target.tls else 'http'}://{target.address}"
    if "Failed parsing HTTP/2" in details or "http1.x" in details:
        status = _http_status(target)
        said = f"GET / answered HTTP {status}" if status is not None else "it does not speak HTTP/2"
        return TargetError(f"target {target.url} speaks HTTP/1.1, not gRPC ({said}): use --target {http}")
    if target.tls and ("CERTIFICATE_VERIFY_FAILED" in details or "certificate verify failed" in details):
        return TargetError(
            f"the TLS certificate of {target.url} could not be verified; pass --insecure to skip verification"
        )
    if target.tls and "WRONG_VERSION_NUMBER" in details:
        return TargetError(
            f"target {target.url} answers the TLS handshake in cleartext: "
            f"for a cleartext gRPC port use --target grpc://{target.address}"
        )
    if target.tls and "Handshake failed" in details:
        return TargetError(f"target {target.url}: the TLS handshake failed ({details[-160:]})")
    if not target.tls and ("Socket closed" in details or "Connection reset" in details):
        return TargetError(
            f"target {target.url} closed the connection ({details[-120:]}), as a TLS port does to a "
            f"cleartext client: if it is one, use --target grpcs://{target.address}"
        )
    return TargetError(f"target {target.url} is unreachable: {details[:200] or code.name}")


def _server_failed(error: grpc.RpcError) -> bool:
    """Whether the failed call's status came from the server (it answered: the port speaks gRPC)."""
    return not client_made(error.code(), error.details())


def check_grpc_reachable(
    url: str,
    headers: Mapping[str, str] | None = None,
    verify: bool = True,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> str:
    """``ServerLive`` once: what it answered (``live=true``, or the status a gRPC server gave)."""
    target = grpc_target(url)
    try:
        answer = _ask(
            target, SERVER_LIVE, pb.ServerLiveRequest(), pb.ServerLiveResponse, headers, verify, timeout_s
        )
    except grpc.RpcError as error:
        if _server_failed(error):
            return f"ServerLive answered {error.code().name}"
        raise unreachable(target, "ServerLive", error, timeout_s) from None
    return f"ServerLive answered live={str(answer.live).lower()}"


def probe_grpc(url: str, headers: Mapping[str, str] | None = None, verify: bool = True) -> tuple[str, str]:
    """(scenario, why) for a ``grpc://`` target: the Open Inference Protocol's service answers."""
    target = grpc_target(url)
    try:
        live = _ask(target, SERVER_LIVE, pb.ServerLiveRequest(), pb.ServerLiveResponse, headers, verify)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise TargetError(
                f"target {target.url} answers gRPC, but not the Open Inference Protocol's {SERVER_LIVE.path} "
                "(UNIMPLEMENTED): give --scenario FILE.py for another gRPC service"
            ) from None
        if not _server_failed(error):
            raise unreachable(target, "ServerLive", error, PROBE_TIMEOUT_S) from None
        return (
            GRPC_SCENARIO,
            f"a grpc:// target; ServerLive answered {error.code().name} (Open Inference Protocol over gRPC)",
        )
    said = f"ServerLive answered live={str(live.live).lower()}"
    try:
        server = _ask(
            target, SERVER_METADATA, pb.ServerMetadataRequest(), pb.ServerMetadataResponse, headers, verify
        )
        said += f", ServerMetadata {server.name} {server.version}".rstrip()
    except grpc.RpcError as error:
        said += f", ServerMetadata answered {error.code().name}"
    return GRPC_SCENARIO, f"a grpc:// target: {said} (Open Inference Protocol over gRPC)"


def find_grpc_model(
    url: str, headers: Mapping[str, str] | None = None, verify: bool = True
) -> tuple[str, str]:
    """(model, how it was found): the first READY model ``RepositoryIndex`` lists.

    None: `TargetError` saying why (not served, refused, nothing READY) and to pass ``--model NAME``.
    """
    target = grpc_target(url)
    try:
        index = _ask(
            target, REPOSITORY_INDEX, ri.RepositoryIndexRequest(), ri.RepositoryIndexResponse, headers, verify
        )
    except grpc.RpcError as error:
        if not _server_failed(error):
            raise unreachable(target, "RepositoryIndex", error, PROBE_TIMEOUT_S) from None
        code, details = error.code().name, str(error.details() or "")[:120]
        hint = ""
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            why = "does not serve RepositoryIndex (UNIMPLEMENTED: KServe's base gRPC service lists no models)"
        else:
            why = f"refused RepositoryIndex ({code}{': ' + details if details else ''})"
            hint = token_header_hint(details)
        raise TargetError(f"{target.url} {why}; pass --model NAME{hint}") from None
    ready = [m.name for m in index.models if m.name and _state(m.state) == "READY"]
    others = [f"{m.name} ({_state(m.state)})" for m in index.models if m.name and m.name not in ready]
    if ready:
        listed = f"{len(ready)} READY of {len(ready) + len(others)} listed"
        return ready[0], f"model {ready[0]} from RepositoryIndex ({listed})"
    lists = f"no READY model ({', '.join(others[:3])})" if others else "no model"
    raise TargetError(f"{target.url}: RepositoryIndex lists {lists}; pass --model NAME")


def _state(state: str) -> str:
    """A model's state in an index: no state counts as READY; MLServer's gRPC index writes its
    Python enum (``State.READY``) where its HTTP index writes ``READY``."""
    return (state or "READY").rsplit(".", 1)[-1].upper()


def grpc_model_metadata(
    url: str, model: str, version: str = "", headers: Mapping[str, str] | None = None, verify: bool = True
) -> dict[str, object]:
    """``ModelMetadata`` of ``model`` in the JSON shape of ``GET /v2/models/<model>``; a model the
    server does not know (any failed call) is a `TargetError` naming ``--model``."""
    target = grpc_target(url)
    request = pb.ModelMetadataRequest(name=model, version=version)
    try:
        metadata = _ask(target, MODEL_METADATA, request, pb.ModelMetadataResponse, headers, verify)
    except grpc.RpcError as error:
        if not _server_failed(error):
            raise unreachable(target, "ModelMetadata", error, PROBE_TIMEOUT_S) from None
        details = str(error.details() or "")[:160]
        raise TargetError(
            f"model {model}: {target.url} answered ModelMetadata with {error.code().name}"
            f"{': ' + details if details else ''}; pass --model NAME of a served model"
        ) from None
    return metadata_json(metadata)


def require_inputs(metadata: dict[str, object], model: str) -> None:
    """Metadata listing no inputs (MLServer's may not) cannot shape a request: one line naming
    ``--payload`` / ``--data``."""
    if not v2_inputs(metadata):
        raise TargetError(
            f"the metadata of model {model} (ModelMetadata) lists no inputs, so no request can be built "
            f"for it: pass --payload '{V2_EXAMPLE}' or --data FILE.jsonl (one such body a line)"
        )


def answers_grpc(http_url: str) -> str | None:
    """The ``grpc://`` URL of a cleartext ``http://`` target's port when a gRPC server answers
    ``ServerLive`` there (a status of its own counts), else None."""
    parts = urlsplit(http_url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    target = GrpcTarget(parts.hostname, parts.port or 80, tls=False)
    try:
        _ask(target, SERVER_LIVE, pb.ServerLiveRequest(), pb.ServerLiveResponse, None, True, HINT_TIMEOUT_S)
    except grpc.RpcError as error:
        return target.url if _server_failed(error) else None
    except TargetError:
        return None
    return target.url
