"""Request bodies and response checks of the endpoint kinds in ``scenarios/`` (pure: no I/O, no locust).

- TF Serving REST and KServe v1 share a wire format: `predict_body` turns a data row into
  ``{"instances": [...]}`` (row format) unless it already is a request (``instances`` or
  ``inputs``); `predict_answer_key` names what the answer must hold (``predictions`` for
  ``instances``, ``outputs`` for TF Serving's columnar ``inputs``).
- `embedding_problem` checks an OpenAI ``/v1/embeddings`` answer.
- `Template` fills a JSON request template from a data row (``scenarios/json_template.py``).

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
import re
from typing import Any

from loadbench.errors import ScenarioError, UsageError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
# Where a ``:predict`` answer's first prediction is: row format (``instances``), columnar (``inputs``).
PREDICT_EXTRACT = ("predictions.0", "outputs.0")


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
