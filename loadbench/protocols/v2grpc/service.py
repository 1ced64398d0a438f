"""gRPC targets, channels, calls and statuses of the Open Inference Protocol's GRPCInferenceService.

A target is ``grpc://HOST:PORT`` (cleartext HTTP/2) or ``grpcs://HOST:PORT`` (TLS), as
`loadbench.values.check_target` accepts it; `grpc_target` splits it. `open_channel` gives each
caller a channel of its own with its own connection (``grpc.use_local_subchannel_pool``: without
it gRPC shares one connection between equal channels, and 32 Locust users would be 32 streams
on one connection where the HTTP clients have 32 connections) and no receive limit (the HTTP
clients have none; what a server may send is the server's business, what it accepts is its
own ``max_receive_message_length``).

TLS is verified against gRPC's root certificates. ``--insecure`` (``verify=False``) trusts the
certificate the server presents, as it is (gRPC's Python API cannot turn verification off):
fetched per address (kept a minute), named by its own subject (`presented_certificate`). A self-signed
certificate works so; a chain whose root is unknown does not (the leaf is no root to BoringSSL).

The methods' paths come from the generated descriptor (`method_path`), never spelt out;
``RepositoryIndex`` and ``ModelStreamInfer`` are not in KServe's service (`REPOSITORY_INDEX`,
`MODEL_STREAM_INFER`). `server_words` tells what
a failed call's server said from what gRPC's client library made up itself.

No Locust, no gevent: the caller's process decides how gRPC waits (`loadbench.scenario.grpcuser`).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import grpc
from google.protobuf.message import Message

from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.protocols.v2grpc import repository_index_pb2 as ri

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
SERVICE_NAME = SERVICE.full_name  # inference.GRPCInferenceService
# Every channel: a connection of its own, and no receive limit (see the module docstring).
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", -1),
)
CERT_TIMEOUT_S = 5.0

Reply = TypeVar("Reply", bound=Message)


def method_path(name: str) -> str:
    """``/inference.GRPCInferenceService/NAME`` of a method the service declares (KeyError otherwise)."""
    return f"/{SERVICE_NAME}/{SERVICE.methods_by_name[name].name}"


@dataclass(frozen=True)
class Method:
    """A unary method: its path and the message types it takes and answers."""

    path: str
    request: type[Message]
    reply: type[Message]


def declared(name: str) -> Method:
    """The `Method` of a method the service declares, with its generated message types."""
    method = SERVICE.methods_by_name[name]
    return Method(
        method_path(name), getattr(pb, method.input_type.name), getattr(pb, method.output_type.name)
    )


SERVER_LIVE = declared("ServerLive")
SERVER_METADATA = declared("ServerMetadata")
MODEL_METADATA = declared("ModelMetadata")
MODEL_INFER = declared("ModelInfer")
# Triton's and MLServer's service has it, KServe's base service does not (UNIMPLEMENTED there).
REPOSITORY_INDEX = Method(
    f"/{SERVICE_NAME}/RepositoryIndex", ri.RepositoryIndexRequest, ri.RepositoryIndexResponse
)
# Triton's bidirectional stream (decoupled models answer a request any number of times): its
# `Method` names one message of each direction.
MODEL_STREAM_INFER = Method(
    f"/{SERVICE_NAME}/ModelStreamInfer", pb.ModelInferRequest, ri.ModelStreamInferResponse
)


@dataclass(frozen=True)
class GrpcTarget:
    """Where a ``grpc://`` or ``grpcs://`` target is: ``host``, ``port``, and whether it is TLS."""

    host: str
    port: int
    tls: bool

    @property
    def address(self) -> str:
        """``host:port`` as gRPC takes it (an IPv6 host in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'grpcs' if self.tls else 'grpc'}://{self.address}"


def grpc_target(url: str) -> GrpcTarget:
    """The `GrpcTarget` of a URL `loadbench.values.check_target` accepted."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{url!r} is not grpc://HOST:PORT")
    return GrpcTarget(parts.hostname, parts.port, parts.scheme.lower() == "grpcs")


def call_metadata(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """``--header`` values as gRPC metadata (whose keys are lower case)."""
    return tuple((name.strip().lower(), value.strip()) for name, value in (headers or {}).items())


# Fetched certificates, kept a minute: every user's channel needs one as the load starts, and a
# long-lived process (the web UI) must see a renewed certificate.
CERT_KEPT_S = 60.0
_CERTIFICATES: dict[tuple[str, int], tuple[float, bytes, str | None]] = {}
_CERTIFICATES_LOCK = threading.Lock()


def presented_certificate(target: GrpcTarget, timeout_s: float = CERT_TIMEOUT_S) -> tuple[bytes, str | None]:
    """(PEM, the name to check it against) of the certificate the server presents. The name is None
    when the target's host is one of the certificate's own names, else the first of them (gRPC
    then checks that name, not the host). OSError when nothing answers."""
    key = (target.host, target.port)
    with _CERTIFICATES_LOCK:
        known = _CERTIFICATES.get(key)
    if known is not None and time.monotonic() - known[0] < CERT_KEPT_S:
        return known[1], known[2]
    pem = _fetch_certificate(key, timeout_s)
    names = _certificate_names(pem, key, timeout_s)
    name = None if not names or target.host in names else names[0]
    with _CERTIFICATES_LOCK:
        _CERTIFICATES[key] = (time.monotonic(), pem.encode(), name)
    return pem.encode(), name


def _fetch_certificate(address: tuple[str, int], timeout_s: float) -> str:
    """The PEM of the certificate a TLS server presents, unverified (gevent's ``ssl`` lacks the
    standard library's ``get_server_certificate(timeout=)``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(address, timeout_s) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise OSError(f"{address[0]}:{address[1]} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der)


def _certificate_names(pem: str, address: tuple[str, int], timeout_s: float) -> list[str]:
    """The DNS and IP names of a certificate, then its common name: read from a handshake that
    trusts that very certificate (the standard library decodes only a verified peer's)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=pem)
    try:
        with socket.create_connection(address, timeout_s) as raw, context.wrap_socket(raw) as tls:
            cert: Any = tls.getpeercert() or {}
    except (OSError, ValueError):
        return []
    names = [str(value) for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    names += [str(value) for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return [n for n in names if "*" not in n] or [n.replace("*", "loadbench") for n in names]


def open_channel(target: GrpcTarget, verify: bool = True) -> grpc.Channel:
    """A new channel to ``target`` (see the module docstring); close it when done.

    ``verify=False`` over TLS: fetching the certificate may raise OSError (nothing answers).
    """
    options = list(CHANNEL_OPTIONS)
    if not target.tls:
        return grpc.insecure_channel(target.address, options=options)
    if verify:
        credentials = grpc.ssl_channel_credentials()
    else:
        pem, name = presented_certificate(target)
        credentials = grpc.ssl_channel_credentials(root_certificates=pem)
        if name is not None:
            options.append(("grpc.ssl_target_name_override", name))
    return grpc.secure_channel(target.address, credentials, options=options)


def unary(
    channel: grpc.Channel,
    method: Method,
    request: Message,
    reply: type[Reply],
    timeout_s: float,
    metadata: tuple[tuple[str, str], ...] = (),
) -> Reply:
    """Call ``method`` once and wait for its answer; a failed call raises ``grpc.RpcError``."""
    call = channel.unary_unary(
        method.path,
        request_serializer=type(request).SerializeToString,
        response_deserializer=reply.FromString,
    )
    return cast(Reply, call(request, timeout=timeout_s, metadata=metadata))


# What gRPC's client library writes when it fails a call the server never answered (connect,
# deadline, a connection lost, a message over the client's own limit): not the server's words.
CLIENT_SIDE_TEXTS = (
    "failed to connect to all addresses",
    "CLIENT:",
    "Socket closed",
    "Stream removed",
    "Connection reset",
    "Broken pipe",
    "Handshake failed",
    "DNS resolution failed",
    "Failed parsing HTTP/2",
    "empty address list",
    "Channel closed",
    "Received RST_STREAM",
    "keepalive watchdog",
)


def client_made(code: grpc.StatusCode, details: str | None) -> bool:
    """Whether gRPC's client library made a failed call's status up itself (`CLIENT_SIDE_TEXTS`,
    the deadline, a cancel): the server never answered the call."""
    text = (details or "").strip()
    if code == grpc.StatusCode.CANCELLED:
        return True
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and text == "Deadline Exceeded":
        return True
    return any(marker in text for marker in CLIENT_SIDE_TEXTS)


def server_words(code: grpc.StatusCode, details: str | None) -> str:
    """What the server said in a failed call's status (its details); "" when it said nothing, or
    when gRPC's client library made the status up (`client_made`)."""
    if code == grpc.StatusCode.OK or client_made(code, details):
        return ""
    return (details or "").strip()
