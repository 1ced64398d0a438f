"""Tensors between the v2 JSON form and the Open Inference Protocol's protobuf messages.

A ``--payload`` / ``--data`` row is a v2 infer request as the HTTP API takes it::

    {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": [...]}],
     "outputs": [{"name": "output-0"}], "parameters": {"content_type": "np"}, "id": "r1"}

`infer_request` makes a ``ModelInferRequest`` of it: each input's ``data`` (flat or nested,
row-major) in the ``InferTensorContents`` field of its datatype, or, with ``raw``, every input as
little-endian bytes in ``raw_input_contents`` (BYTES elements each a 4-byte length and the
bytes). FP16 and BF16 have no typed field: a request holding one is sent raw. `response_json`
turns a ``ModelInferResponse``, typed or raw (as Triton answers), into the HTTP answer's JSON
shape, so ``--extract outputs.0.data.0`` reads both transports alike; `metadata_json` does the
same for ``ModelMetadataResponse``, and `datatype_mismatch` checks a row against it.

A row that cannot be sent raises `TensorError` (a ValueError) naming the input; scenarios turn
it into one line. Pure: no I/O, no Locust.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from loadbench.protocols.bodies import flatten_nested, v2_inputs
from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb

# Each datatype's field of InferTensorContents; FP16 and BF16 have none (raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# Each fixed-size datatype's raw layout (little-endian); BF16 travels as the top half of an FP32.
RAW_DTYPE = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BF16": "<u2",
}
DATATYPES = (*CONTENTS_FIELD, "FP16", "BF16")
RAW_ONLY = ("FP16", "BF16")
_INTEGER = {name for name in RAW_DTYPE if name.startswith(("INT", "UINT"))}


class TensorError(ValueError):
    """A row that is no v2 infer request, or whose data does not fit its datatype."""


def flatten(data: Any) -> list[Any]:
    """A v2 ``data`` field, flat or nested row-major, as one flat list."""
    if not isinstance(data, list):
        raise TensorError('"data" must be a list')
    return flatten_nested(data)


def _numbers(datatype: str, values: list[Any]) -> npt.NDArray[Any]:
    """The values of a numeric or BOOL tensor as an array of the datatype's raw layout."""
    if datatype == "BOOL":
        if not all(isinstance(v, bool) or v in (0, 1) for v in values):
            raise TensorError("BOOL data must be true/false")
        return np.asarray(values, dtype="?")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise TensorError(f"{datatype} data must be numbers")
    if datatype in _INTEGER:
        if not all(isinstance(v, int) or float(v).is_integer() for v in values):
            raise TensorError(f"{datatype} data must be whole numbers")
        limits = np.iinfo(np.dtype(RAW_DTYPE[datatype]))
        integers = [int(v) for v in values]
        if integers and not (limits.min <= min(integers) and max(integers) <= limits.max):
            raise TensorError(f"{datatype} data must lie in [{limits.min}, {limits.max}]")
        return np.asarray(integers, dtype=RAW_DTYPE[datatype])
    if datatype == "BF16":
        bits = np.asarray(values, dtype="<f4").view("<u4").astype(np.uint64)
        # Round to nearest, ties to even, into the upper 16 bits.
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    return np.asarray(values, dtype=RAW_DTYPE[datatype])


def _bytes_elements(values: list[Any]) -> list[bytes]:
    if not all(isinstance(v, str) for v in values):
        raise TensorError("BYTES data must be strings")
    return [v.encode("utf-8") for v in values]


def _tensor_fields(tensor: Any) -> tuple[str, str, list[int], list[Any]]:
    """(name, datatype, shape, flat data) of one entry of ``inputs``."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or not tensor["name"]:
        raise TensorError('each entry of "inputs" must be an object with a "name"')
    name = tensor["name"]
    datatype = str(tensor.get("datatype", "")).upper()
    if datatype not in DATATYPES:
        raise TensorError(
            f"input {name}: datatype {tensor.get('datatype')!r} is not one of {', '.join(DATATYPES)}"
        )
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise TensorError(f'input {name}: "shape" must be a list of whole numbers')
    try:
        return name, datatype, shape, flatten(tensor.get("data"))
    except TensorError as exc:
        raise TensorError(f"input {name}: {exc}") from None


def _parameters(values: Any, into: Any, where: str) -> None:
    """JSON ``parameters`` into a protobuf map of InferParameter (bool, int or string values)."""
    if values is None:
        return
    if not isinstance(values, dict):
        raise TensorError(f'{where}"parameters" must be an object')
    for key, value in values.items():
        if isinstance(value, bool):
            into[key].bool_param = value
        elif isinstance(value, int):
            into[key].int64_param = value
        elif isinstance(value, str):
            into[key].string_param = value
        else:
            raise TensorError(
                f"{where}parameter {key!r}: the protocol's parameters are booleans, integers or strings"
            )


def infer_request(body: Any, model: str, version: str = "", raw: bool = False) -> pb.ModelInferRequest:
    """The ``ModelInferRequest`` of a v2 JSON request for ``model`` (see the module docstring)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise TensorError('a v2 infer request is a JSON object with a non-empty "inputs" list')
    tensors = [_tensor_fields(t) for t in body["inputs"]]
    raw = raw or any(datatype in RAW_ONLY for _, datatype, _, _ in tensors)
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    if body.get("id") is not None:
        request.id = str(body["id"])
    _parameters(body.get("parameters"), request.parameters, "")
    for (name, datatype, shape, data), given in zip(tensors, body["inputs"], strict=True):
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        _parameters(given.get("parameters"), tensor.parameters, f"input {name}: ")
        try:
            if datatype == "BYTES":
                elements = _bytes_elements(data)
                if raw:
                    request.raw_input_contents.append(
                        b"".join(struct.pack("<I", len(e)) + e for e in elements)
                    )
                else:
                    tensor.contents.bytes_contents.extend(elements)
                continue
            array = _numbers(datatype, data)
        except (TensorError, OverflowError, ValueError) as exc:
            raise TensorError(f"input {name}: {exc}") from None
        if raw:
            request.raw_input_contents.append(array.tobytes())
        else:
            getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(array.tolist())
    for output in body.get("outputs") or []:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise TensorError('each entry of "outputs" must be an object with a "name"')
        wanted = request.outputs.add(name=output["name"])
        _parameters(output.get("parameters"), wanted.parameters, f"output {output['name']}: ")
    return request


def _raw_elements(datatype: str, raw: bytes) -> list[Any]:
    """A raw tensor's elements (BYTES as text); [] for a datatype or length it cannot be."""
    if datatype == "BYTES":
        elements, at = [], 0
        while at + 4 <= len(raw):
            (size,) = struct.unpack_from("<I", raw, at)
            elements.append(raw[at + 4 : at + 4 + size].decode("utf-8", "replace"))
            at += 4 + size
        return elements
    dtype = RAW_DTYPE.get(datatype)
    if dtype is None or len(raw) % np.dtype(dtype).itemsize:
        return []
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BF16":
        array = (array.astype("<u4") << 16).view("<f4")
    return list(array.tolist())


def _typed_elements(datatype: str, contents: pb.InferTensorContents) -> list[Any]:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        return []
    values: Iterable[Any] = getattr(contents, field)
    if datatype == "BYTES":
        return [bytes(v).decode("utf-8", "replace") for v in values]
    return list(values)


def _parameters_json(parameters: Any) -> dict[str, Any]:
    return {
        key: getattr(value, value.WhichOneof("parameter_choice") or "string_param")
        for key, value in parameters.items()
    }


def _tensors_json(tensors: Iterable[Any], raw: list[bytes]) -> list[dict[str, Any]]:
    """Input or output tensors in the JSON shape, their data from ``raw`` (one entry each) or typed."""
    found = []
    for i, tensor in enumerate(tensors):
        if raw:
            data = _raw_elements(tensor.datatype, raw[i]) if i < len(raw) else []
        else:
            data = _typed_elements(tensor.datatype, tensor.contents)
        entry = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape), "data": data}
        if tensor.parameters:
            entry["parameters"] = _parameters_json(tensor.parameters)
        found.append(entry)
    return found


def request_json(request: pb.ModelInferRequest) -> dict[str, Any]:
    """A ``ModelInferRequest`` in the v2 JSON request form (what a server of it reads)."""
    body: dict[str, Any] = {"inputs": _tensors_json(request.inputs, list(request.raw_input_contents))}
    if request.id:
        body["id"] = request.id
    if request.parameters:
        body["parameters"] = _parameters_json(request.parameters)
    if request.outputs:
        body["outputs"] = [{"name": o.name} for o in request.outputs]
    return body


def response_json(response: pb.ModelInferResponse) -> dict[str, Any]:
    """A ``ModelInferResponse`` in the HTTP answer's JSON shape: ``{"model_name", "model_version",
    ["id"], ["parameters"], "outputs": [{"name", "datatype", "shape", "data"}]}``."""
    answer: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id:
        answer["id"] = response.id
    if response.parameters:
        answer["parameters"] = _parameters_json(response.parameters)
    answer["outputs"] = _tensors_json(response.outputs, list(response.raw_output_contents))
    return answer


def metadata_json(metadata: pb.ModelMetadataResponse) -> dict[str, Any]:
    """A ``ModelMetadataResponse`` in the JSON shape of ``GET /v2/models/<model>``."""

    def tensors(specs: Iterable[pb.ModelMetadataResponse.TensorMetadata]) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in specs]

    return {
        "name": metadata.name,
        "versions": list(metadata.versions),
        "platform": metadata.platform,
        "inputs": tensors(metadata.inputs),
        "outputs": tensors(metadata.outputs),
    }


def datatype_mismatch(body: Any, metadata: dict[str, Any]) -> str | None:
    """Why a v2 JSON request's inputs do not fit the model's metadata (a datatype other than the one
    declared for that input's name), else None; metadata that declares no inputs fits anything."""
    declared = {str(i["name"]): str(i.get("datatype", "")).upper() for i in v2_inputs(metadata)}
    for tensor in body.get("inputs", []) if isinstance(body, dict) else []:
        if not isinstance(tensor, dict):
            continue
        name, datatype = str(tensor.get("name")), str(tensor.get("datatype", "")).upper()
        if declared.get(name) and declared[name] != datatype:
            return f"input {name} is {datatype or 'without a datatype'}, but the model's metadata says {declared[name]}"
    return None
