"""Real gRPC servers on loopback for the tests: the demo's Open Inference Protocol service in this
process (`demo_grpc`), a server of only the methods a test gives (`grpc_serving`), and the demo
as a child process serving HTTP and gRPC (`demo_grpc_process`).

gRPC's server threads are plain threads: the pytest process never imports Locust or gevent.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc

from loadbench.demo.grpcserver import start_grpc_server
from loadbench.demo.model import DemoModel
from loadbench.protocols.v2grpc.service import REPOSITORY_INDEX, SERVICE_NAME, declared

Behaviour = Callable[[Any, grpc.ServicerContext], Any]


@contextmanager
def grpc_serving(
    methods: dict[str, Behaviour], credentials: grpc.ServerCredentials | None = None
) -> Iterator[str]:
    """A gRPC server of the inference service's ``methods`` (name -> behaviour) only: any other
    method answers UNIMPLEMENTED, as a server without it does. Yields its ``grpc://`` URL."""
    handlers = {}
    for name, behaviour in methods.items():
        method = REPOSITORY_INDEX if name == "RepositoryIndex" else declared(name)
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=method.request.FromString,
            response_serializer=method.reply.SerializeToString,
        )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"{'grpcs' if credentials else 'grpc'}://127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@contextmanager
def demo_grpc(
    model: DemoModel, latency_ms: float = 0.0, credentials: grpc.ServerCredentials | None = None
) -> Iterator[str]:
    """The demo's gRPC service (its model, ``latency_ms`` per inference) in this process; its URL."""
    server, port = start_grpc_server(
        model, lambda: time.sleep(latency_ms / 1000), "127.0.0.1", 0, credentials
    )
    try:
        yield f"{'grpcs' if credentials else 'grpc'}://127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@contextmanager
def demo_grpc_process(latency_ms: float = 0.0, *options: str) -> Iterator[tuple[str, str]]:
    """``loadbench demo --grpc-port 0`` (and ``options``) as a real child process; yields its
    (http://, grpc://) URLs."""
    with demo_grpc_child(latency_ms, *options) as (_, http, grpc_url):
        yield http, grpc_url


@contextmanager
def demo_grpc_child(
    latency_ms: float = 0.0, *options: str
) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """`demo_grpc_process`, yielding the child process too (for a test that kills it)."""
    command = [sys.executable, "-m", "loadbench", "demo", "--port", "0", "--grpc-port", "0", *options]
    process = subprocess.Popen([*command, "--latency-ms", str(latency_ms)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        http, grpc_url = re.search(r"http://\S+", line), re.search(r"grpc://[\d.:]+", line)
        assert http and grpc_url, f"demo printed {line!r}"
        yield process, http.group(0), grpc_url.group(0)
    finally:
        process.terminate()
        process.communicate(timeout=10)
