"""Request bodies and response checks of the endpoint kinds in ``scenarios/`` (pure: no I/O, no locust).

- TF Serving REST and KServe v1 share a wire format: `predict_body` turns a data row into
  ``{"instances": [...]}`` (row format) unless it already is a request (``instances`` or
  ``inputs``); `predict_answer_key` names what the answer must hold (``predictions`` for
  ``instances``, ``outputs`` for TF Serving's columnar ``inputs``), `predict_answer_keys` what
  it may hold (KServe answers ``predictions`` to ``inputs`` too).
- `embedding_problem` checks an OpenAI ``/v1/embeddings`` answer.
- `Template` fills a JSON request template from a data row (``scenarios/json_template.py``).
- What a server's metadata says a request must hold, for the start line and for the error that
  names what to pass: `v2_inputs` (Open Inference Protocol ``GET /v2/models/<model>``),
  `tfserving_inputs` and `tfserving_example` (TF Serving's ``/metadata`` signature),
  `torchserve_settings` (TorchServe's ``GET /models/<model>``); `v2_synthetic_request` fills
  what v2 metadata declares with random values.

Template rules. The template is JSON text. A placeholder ``{{field}}`` stands inside a JSON string:

- a string that is nothing but one placeholder (``"{{pixels}}"``) becomes the row's value with
  its JSON type (a list stays a list, a number a number);
- a placeholder inside longer text (``"Translate: {{text}}"``) is replaced by the value's text
  (a string as it is, anything else as compact JSON).

The filled template is then encoded as JSON, so quotes, backslashes and newlines in the row's
values are escaped by the encoder: nothing in a value can break out of its string. Field names
are letters, digits, ``_``, ``-`` and ``.``; a row lacking a field the template names is an error.
Placeholders in object keys are filled as text too.
"""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

from loadbench.errors import ScenarioError, UsageError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
# Where a ``:predict`` answer's first prediction is: row format (``instances``), columnar (``inputs``).
PREDICT_EXTRACT = ("predictions.0", "outputs.0")
# An Open Inference Protocol infer request, as the error for a model whose metadata lists no inputs shows it.
V2_EXAMPLE = (
    '{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}'
)
EXAMPLE_MAX_CHARS = 160  # a longer example body is described, not written out


def predict_body(row: Any) -> Any:
    """A TF Serving / KServe v1 ``:predict`` request from a data row.

    A dict with ``instances`` or ``inputs`` is sent as it is; anything else is one instance.
    """
    if isinstance(row, dict) and ("instances" in row or "inputs" in row):
        return row
    return {"instances": [row]}


def predict_answer_key(body: Any) -> str:
    """The key a successful ``:predict`` answer holds for this request."""
    return (
        "outputs"
        if isinstance(body, dict) and "inputs" in body and "instances" not in body
        else "predictions"
    )


def predict_answer_keys(body: Any) -> tuple[str, ...]:
    """The keys one of which a successful ``:predict`` answer to this request holds.

    A columnar ``inputs`` request may be answered either way: TF Serving answers ``outputs``,
    KServe's model server ``predictions`` (it answers every v1 request so).
    """
    key = predict_answer_key(body)
    return (key, "predictions") if key == "outputs" else (key,)


def embedding_problem(body: Any) -> str | None:
    """Why an ``/v1/embeddings`` answer is not a usable embedding (None when it is)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return "invalid response: no data[0] in the JSON body"
    vector = data[0].get("embedding")
    if not isinstance(vector, list) or not vector:
        return "invalid response: data[0].embedding is not a non-empty list"
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in vector):
        return "invalid response: data[0].embedding holds values that are not finite numbers"
    return None


def usage_tokens(body: Any, key: str = "prompt_tokens") -> int | None:
    """``usage[key]`` of an OpenAI answer when it is a non-negative integer."""
    usage = body.get("usage") if isinstance(body, dict) else None
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class Template:
    """A JSON request template with ``{{field}}`` placeholders (rules in the module docstring).

    >>> Template('{"inputs": "{{text}}", "n": "{{n}}"}').fill({"text": 'say "hi"', "n": 3})
    {'inputs': 'say "hi"', 'n': 3}
    >>> Template('{"prompt": "Q: {{q}}"}').fill({"q": [1, 2]})
    {'prompt': 'Q: [1,2]'}
    """

    def __init__(self, text: str, source: str = "--template") -> None:
        try:
            self.skeleton = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{source} is not valid JSON ({exc.msg} at character {exc.pos}); "
                'placeholders go inside strings: {"inputs": "{{text}}"}'
            ) from None
        self.fields = sorted(set(PLACEHOLDER.findall(text)))
        if not self.fields:
            raise UsageError(f"{source} names no {{{{field}}}} placeholder")
        self.source = source

    def fill(self, row: Any) -> Any:
        """The template with the row's values; a row lacking a field -> `ScenarioError`."""
        if not isinstance(row, dict):
            raise ScenarioError(f"{self.source}: a data row is {type(row).__name__}, not a JSON object")
        missing = [f for f in self.fields if f not in row]
        if missing:
            raise ScenarioError(f"{self.source}: a data row has no field {', '.join(map(repr, missing))}")
        return self._fill(self.skeleton, row)

    def _fill(self, node: Any, row: dict[str, Any]) -> Any:
        if isinstance(node, str):
            whole = PLACEHOLDER.fullmatch(node)
            if whole:
                return row[whole.group(1)]
            return PLACEHOLDER.sub(lambda m: _as_text(row[m.group(1)]), node)
        if isinstance(node, list):
            return [self._fill(item, row) for item in node]
        if isinstance(node, dict):
            return {
                PLACEHOLDER.sub(lambda m: _as_text(row[m.group(1)]), key): self._fill(value, row)
                for key, value in node.items()
            }
        return node


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def v2_inputs(metadata: Any) -> list[dict[str, Any]]:
    """The input tensors an Open Inference Protocol model's metadata declares (each with a ``name``).

    Empty when it declares none (MLServer's metadata may list no inputs) or only unnamed ones.
    """
    inputs = metadata.get("inputs") if isinstance(metadata, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) and i.get("name") for i in inputs):
        return []
    return inputs


_V2_INTEGER_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def v2_synthetic_request(metadata: Any, batch: int, seed: int = 0) -> dict[str, Any]:
    """A v2 infer request filling every input the metadata declares with seeded random values,
    ``-1`` dimensions set to ``batch`` (the HTTP and the gRPC scenarios send the same ones)."""
    rng = random.Random(seed)
    inputs = []
    for spec in v2_inputs(metadata):
        shape = [batch if int(d) < 0 else int(d) for d in spec.get("shape", [batch])]
        datatype = str(spec.get("datatype", "FP32")).upper()
        count = math.prod(shape)
        if datatype in _V2_INTEGER_TYPES:
            data: list[Any] = [rng.randint(0, 16) for _ in range(count)]
        elif datatype == "BOOL":
            data = [rng.random() < 0.5 for _ in range(count)]
        elif datatype == "BYTES":
            data = ["loadbench"] * count
        else:
            data = [round(rng.uniform(0.0, 16.0), 3) for _ in range(count)]
        inputs.append({"name": spec["name"], "shape": shape, "datatype": datatype, "data": data})
    return {"inputs": inputs}


TensorSpec = tuple[str, str, list[int] | None]  # (name, dtype, dimensions; None: unknown rank)


def tfserving_inputs(metadata: Any) -> tuple[str, list[TensorSpec]] | None:
    """(signature name, its inputs) of TF Serving's ``GET /v1/models/<model>/metadata`` answer.

    The ``serving_default`` signature, else the first one; None when the answer holds none.
    """
    try:
        signatures = metadata["metadata"]["signature_def"]["signature_def"]
    except (KeyError, TypeError):
        return None
    if not isinstance(signatures, dict) or not signatures:
        return None
    name = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    inputs = signatures[name].get("inputs") if isinstance(signatures[name], dict) else None
    if not isinstance(inputs, dict):
        return None
    specs: list[TensorSpec] = []
    for key, info in sorted(inputs.items()):
        info = info if isinstance(info, dict) else {}
        shape: dict[str, Any] = info["tensor_shape"] if isinstance(info.get("tensor_shape"), dict) else {}
        dims = shape.get("dim")
        sizes = None
        if isinstance(dims, list) and not shape.get("unknown_rank"):
            # TF Serving writes sizes as strings (int64 in its JSON mapping of the protobuf).
            sizes = [int(d.get("size", -1)) for d in dims if isinstance(d, dict)]
        specs.append((str(key), str(info.get("dtype", "DT_INVALID")), sizes))
    return name, specs


def describe_tensors(specs: list[TensorSpec]) -> str:
    """``x DT_FLOAT [-1, 3], y DT_STRING [?]``: tensors as a start line or an error names them."""
    return ", ".join(f"{name} {dtype} {'[?]' if dims is None else dims}" for name, dtype, dims in specs)


def _zeros(dtype: str, dims: list[int]) -> Any:
    value: Any = "" if dtype == "DT_STRING" else False if dtype == "DT_BOOL" else 0
    for size in reversed(dims):
        value = [value] * max(size, 1)
    return value


def tfserving_example(specs: list[TensorSpec]) -> str:
    """A row-format ``:predict`` body for the signature's inputs (zeros; the batch dimension is one row).

    A body longer than `EXAMPLE_MAX_CHARS` (an image) is described by its row's shape instead.
    """
    rows = {name: _zeros(dtype, (dims or [-1])[1:]) for name, dtype, dims in specs}
    row = next(iter(rows.values())) if len(rows) == 1 else rows
    example = json.dumps({"instances": [row]}, separators=(", ", ": "))
    if len(example) <= EXAMPLE_MAX_CHARS:
        return example
    return '{"instances": [ROW, ...]} with each ROW ' + (
        f"shaped {(specs[0][2] or [-1])[1:]}" if len(specs) == 1 else "an object of " + ", ".join(rows)
    )


def torchserve_settings(description: Any) -> str | None:
    """``workers 2/2 READY (min 2, max 4), batchSize 8, maxBatchDelay 50 ms`` from TorchServe's
    ``GET /models/<model>`` answer (a list of one description per version); None when it holds none."""
    entry = description[0] if isinstance(description, list) and description else None
    if not isinstance(entry, dict):
        return None
    workers: list[Any] = entry["workers"] if isinstance(entry.get("workers"), list) else []
    ready = len([w for w in workers if isinstance(w, dict) and w.get("status") == "READY"])
    return (
        f"workers {ready}/{len(workers)} READY (min {entry.get('minWorkers', '?')}, "
        f"max {entry.get('maxWorkers', '?')}), batchSize {entry.get('batchSize', '?')}, "
        f"maxBatchDelay {entry.get('maxBatchDelay', '?')} ms"
    )


def flatten_nested(data: list[Any]) -> list[Any]:
    """A v2 ``data`` list, flat or nested row-major, as one flat list (iteratively: a hostile
    body nested thousands deep must not exhaust the recursion limit)."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat
