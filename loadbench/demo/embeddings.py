"""The demo's OpenAI-style ``POST /v1/embeddings``: hashed word vectors, not a model.

Consumes an embeddings request ``{"model", "input", "encoding_format", "dimensions"}``, where
``input`` is a string, a list of strings, a list of token ids or a list of such lists (OpenAI's
four forms); produces OpenAI's answer ``{"object": "list", "data": [{"object": "embedding",
"index", "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``.

It is served under the LLM simulator's model (``loadbench-llm-simulator``, the one
``GET /v1/models`` lists), so ``--scenario embeddings`` finds it as it finds a real server's, and
the probe still sees a simulator-only list and benchmarks the demo's digits model. Each token (a
word, or a token id) is a fixed pseudo-random vector seeded by its hash; a text's embedding is
the unit-length sum of its tokens' vectors: deterministic, and texts sharing words point alike.
``dimensions`` keeps the first N components, renormalized (as OpenAI's text-embedding-3 models
do); ``encoding_format: "base64"`` packs little-endian float32s. Tokens are words, as the
simulator counts them. Refusals are `loadbench.demo.llmsim.SimulatorError` (400, 404).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any

import numpy as np

from loadbench.demo.llmsim import MODEL_ID, SimulatorError

EMBEDDING_DIM = 64


@lru_cache(maxsize=8192)
def _token_vector(token: str) -> np.ndarray:
    # blake2b, not hash(): Python salts str hashes per process, and embeddings must not change.
    seed = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    vector = np.random.default_rng(seed).standard_normal(EMBEDDING_DIM)
    vector.flags.writeable = False  # shared by every request through the cache
    return vector


def _is_token_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _texts(value: Any) -> list[list[str]]:
    """The request's inputs, each as its tokens (words, or token ids as text)."""
    one_text = isinstance(value, list) and value and all(_is_token_id(v) for v in value)
    if isinstance(value, str) or one_text:
        value = [value]
    if not isinstance(value, list) or not value:
        raise SimulatorError(400, '"input" must be a string, or a non-empty list of strings or of token ids')
    texts: list[list[str]] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            tokens = item.split()
        elif isinstance(item, list) and all(_is_token_id(v) for v in item):
            tokens = [f"#{v}" for v in item]  # a token id is never a word
        else:
            raise SimulatorError(400, f'"input" item {i} is neither a string nor a list of token ids')
        if not tokens:
            raise SimulatorError(400, f'"input" item {i} is empty')
        texts.append(tokens)
    return texts


def _dimensions(body: dict[str, Any]) -> int:
    value = body.get("dimensions")
    if value is None:
        return EMBEDDING_DIM
    if not _is_token_id(value) or not 1 <= value <= EMBEDDING_DIM:
        raise SimulatorError(400, f'"dimensions" must be an integer from 1 to {EMBEDDING_DIM}')
    return int(value)


def embed_text(tokens: list[str], dimensions: int = EMBEDDING_DIM) -> np.ndarray:
    """The unit-length embedding of a text's tokens, ``dimensions`` long."""
    total: np.ndarray = np.sum([_token_vector(t) for t in tokens], axis=0)[:dimensions]
    norm = float(np.linalg.norm(total))
    # A sum can come out (nearly) zero, likeliest when cut to a few dimensions: any fixed unit
    # vector will do, where dividing by the norm would give NaNs.
    unit: np.ndarray = total / norm if norm > 1e-12 else np.eye(dimensions)[0]
    return unit


def embed(body: Any) -> dict[str, Any]:
    """Answer ``POST /v1/embeddings`` (module docstring)."""
    if not isinstance(body, dict):
        raise SimulatorError(400, "request body must be a JSON object")
    model = body.get("model")
    if model is not None and model != MODEL_ID:
        raise SimulatorError(404, f"the model {model!r} does not exist; this simulator serves {MODEL_ID!r}")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise SimulatorError(400, '"encoding_format" must be "float" or "base64"')
    texts, dimensions = _texts(body.get("input")), _dimensions(body)
    data = []
    for index, tokens in enumerate(texts):
        vector = embed_text(tokens, dimensions)
        encoded: Any = (
            base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
            if encoding == "base64"
            else [round(float(v), 7) for v in vector]
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens_in = sum(len(tokens) for tokens in texts)
    return {
        "object": "list",
        "data": data,
        "model": MODEL_ID,
        "usage": {"prompt_tokens": tokens_in, "total_tokens": tokens_in},
    }
