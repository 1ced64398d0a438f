"""Discovery over gRPC (`loadbench.protocols.v2grpc.discovery`) and the first contact in the
target's own protocol (`loadbench.protocols.targets`), against real servers on loopback: the
demo's gRPC service, servers of a few methods only, an HTTP/1.1 server, a closed port, TLS."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_servers import demo_grpc, grpc_serving
from helpers import json_server
from tls import self_signed_cert

from loadbench.demo.model import DemoModel, build_model
from loadbench.errors import TargetError
from loadbench.protocols import targets
from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.protocols.v2grpc import repository_index_pb2 as ri
from loadbench.protocols.v2grpc.discovery import (
    check_grpc_reachable,
    find_grpc_model,
    grpc_model_metadata,
    probe_grpc,
    require_inputs,
)


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return build_model()


@pytest.fixture(scope="module")
def demo(model: DemoModel) -> Iterator[str]:
    with demo_grpc(model) as url:
        yield url


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return int(port)


def live(request: Any, context: grpc.ServicerContext) -> pb.ServerLiveResponse:
    return pb.ServerLiveResponse(live=True)


def test_the_demo_is_found_live_with_its_model_and_metadata(demo: str) -> None:
    assert check_grpc_reachable(demo) == "ServerLive answered live=true"
    scenario, reason = probe_grpc(demo)
    assert scenario == "kserve_v2_grpc"
    assert "ServerLive answered live=true, ServerMetadata loadbench-demo" in reason
    assert find_grpc_model(demo) == ("digits", "model digits from RepositoryIndex (1 READY of 1 listed)")
    metadata = grpc_model_metadata(demo, "digits")
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 64]}]
    require_inputs(metadata, "digits")  # declares them: no error


def test_an_unknown_model_is_named_with_the_servers_words(demo: str) -> None:
    with pytest.raises(TargetError) as caught:
        grpc_model_metadata(demo, "nosuch")
    assert str(caught.value) == (
        f"model nosuch: {demo} answered ModelMetadata with NOT_FOUND: model 'nosuch' not found; "
        "pass --model NAME of a served model"
    )


def test_kserves_base_service_has_no_model_list_so_the_start_asks_for_the_model() -> None:
    with grpc_serving({"ServerLive": live}) as url:
        assert check_grpc_reachable(url) == "ServerLive answered live=true"
        with pytest.raises(TargetError) as caught:
            find_grpc_model(url)
    assert str(caught.value) == (
        f"{url} does not serve RepositoryIndex (UNIMPLEMENTED: KServe's base gRPC service lists no models); "
        "pass --model NAME"
    )


def test_an_index_of_models_none_ready_and_metadata_without_inputs_name_what_to_pass() -> None:
    def index(request: Any, context: grpc.ServicerContext) -> ri.RepositoryIndexResponse:
        reply = ri.RepositoryIndexResponse()
        reply.models.add(name="resnet", version="1", state="UNAVAILABLE", reason="loading failed")
        return reply

    def metadata(request: Any, context: grpc.ServicerContext) -> pb.ModelMetadataResponse:
        return pb.ModelMetadataResponse(name=request.name, platform="mlserver")  # MLServer's may list none

    with grpc_serving({"RepositoryIndex": index, "ModelMetadata": metadata}) as url:
        with pytest.raises(
            TargetError, match=r"RepositoryIndex lists no READY model \(resnet \(UNAVAILABLE\)\)"
        ):
            find_grpc_model(url)
        found = grpc_model_metadata(url, "resnet")
    with pytest.raises(TargetError) as caught:
        require_inputs(found, "resnet")
    assert "lists no inputs" in str(caught.value) and "--payload" in str(caught.value)


def test_mlservers_enum_states_count_as_the_states_they_name() -> None:
    def index(request: Any, context: grpc.ServicerContext) -> ri.RepositoryIndexResponse:
        reply = ri.RepositoryIndexResponse()  # as MLServer 1.7's gRPC index writes them
        reply.models.add(name="loading", state="State.LOADING")
        reply.models.add(name="digits", state="State.READY")
        return reply

    with grpc_serving({"RepositoryIndex": index}) as url:
        assert find_grpc_model(url) == ("digits", "model digits from RepositoryIndex (1 READY of 2 listed)")


def test_a_grpc_server_of_another_service_is_reachable_but_not_probed_as_v2() -> None:
    with grpc_serving({}) as url:  # every method UNIMPLEMENTED
        assert check_grpc_reachable(url) == "ServerLive answered UNIMPLEMENTED"
        with pytest.raises(TargetError, match="answers gRPC, but not the Open Inference Protocol's"):
            probe_grpc(url)


def test_a_closed_port_is_unreachable(closed_port: int) -> None:
    with pytest.raises(TargetError) as caught:
        targets.check_reachable(f"grpc://127.0.0.1:{closed_port}", timeout_s=5)
    assert str(caught.value).startswith(f"target grpc://127.0.0.1:{closed_port} is unreachable: ")
    assert "Connection refused" in str(caught.value)


def test_an_http_server_given_as_grpc_is_named_with_the_fix() -> None:
    with json_server(lambda handler, state: (404, {"error": "not found"})) as (url, _):
        port = url.rsplit(":", 1)[1]
        with pytest.raises(TargetError) as caught:
            targets.check_reachable(f"grpc://127.0.0.1:{port}")
    assert str(caught.value) == (
        f"target grpc://127.0.0.1:{port} speaks HTTP/1.1, not gRPC (GET / answered HTTP 404): "
        f"use --target http://127.0.0.1:{port}"
    )


def test_a_grpc_port_given_as_http_is_named_and_probed_as_grpc(demo: str) -> None:
    http = demo.replace("grpc://", "http://")
    with pytest.raises(TargetError) as caught:
        targets.check_reachable(http)
    assert str(caught.value) == (
        f"target {http} answers in gRPC, not HTTP/1.1 (ServerLive answered there): use --target {demo} "
        "(the Open Inference Protocol over gRPC, scenario kserve_v2_grpc)"
    )
    assert targets.check_reachable(demo) == "ServerLive answered live=true"
    assert targets.probe_target(demo).scenario == "kserve_v2_grpc"


def test_tls_is_verified_unless_insecure_and_cleartext_is_told_apart(
    model: DemoModel, tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    cert, key = self_signed_cert(openssl, tmp_path)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    with demo_grpc(model, credentials=credentials) as url:
        with pytest.raises(TargetError, match="could not be verified; pass --insecure to skip verification"):
            check_grpc_reachable(url)
        assert check_grpc_reachable(url, verify=False) == "ServerLive answered live=true"
        # A host name the certificate does not hold: --insecure trusts the certificate as presented.
        localhost = url.replace("127.0.0.1", "localhost")
        assert find_grpc_model(localhost, verify=False)[0] == "digits"
        cleartext = url.replace("grpcs://", "grpc://")
        with pytest.raises(
            TargetError, match=f"as a TLS port does to a cleartext client: if it is one, use --target {url}"
        ):
            check_grpc_reachable(cleartext)
    with (
        demo_grpc(model) as plain,
        pytest.raises(TargetError, match="answers the TLS handshake in cleartext"),
    ):
        check_grpc_reachable(plain.replace("grpc://", "grpcs://"))
