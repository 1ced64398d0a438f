"""llama-cpp-python's OpenAI-compatible server on a tiny random GGUF Llama, for the conformance tests.

    python tests/real/venvs.py build llamacpp     # the venv, once: compiles llama.cpp (cached)

PyPI has only an sdist of llama-cpp-python, so pip compiles the llama.cpp it vendors (CPU only,
no ``-march=native``, two build jobs; ``CMAKE_ARGS`` below). Nothing is downloaded at run time:
the model is written here by the server venv's own python with the ``gguf`` package that
llama.cpp publishes, a ``llama`` architecture GGUF of about 1 MB (2 layers, hidden size 64,
float32, seeded random weights) with a SentencePiece-style vocabulary: the control tokens,
the 256 byte tokens, the printable ASCII characters, and every ``▁``-prefix of the words
of `loadbench.protocols.workloads.VOCABULARY` (SentencePiece merges two pieces only into a
piece that is in the vocabulary, so each word needs its prefixes to become one token), and a
chat template.

Random weights would generate anything: the end of sequence (an answer shorter than
``max_tokens``), a byte token of half a UTF-8 character (which the server holds back: a token
with no text) or a ``<`` (held back as a possible start of the stop string ``</s>``). So the
weights forbid them, exactly and at any temperature: dimension 0 of the residual stream is a
constant (every embedding has 1 there, no layer writes to it), so after the final norm it is
always positive, and the output rows of every token that must not be generated are ``-1000``
there and 0 elsewhere, the others 0 there and random elsewhere. Every answer then has exactly
``max_tokens`` tokens, each a piece of letters or digits (one content event per token), and ends
with ``finish_reason`` ``length``.

`start_llamacpp(workdir)` runs ``python -m llama_cpp.server`` on a free port, one thread.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from realserver import Running, free_port, http_ready, running, venv_or_skip
from venvs import ServerEnv, register

from loadbench.protocols.workloads import VOCABULARY

LLAMACPP_VERSION = "0.3.36"
GGUF_VERSION = "0.19.0"

# PyPI has only llama-cpp-python's sdist: pip compiles the vendored llama.cpp. CPU only, no
# -march=native (the venv may move to another CPU with the cache), no multimodal library (the
# server imports it only for image chat formats), two build jobs on a shared 2-core machine.
LLAMACPP = register(
    ServerEnv(
        "llamacpp",
        steps=((f"gguf=={GGUF_VERSION}",), (f"llama-cpp-python[server]=={LLAMACPP_VERSION}",)),
        commands=("cmake", "c++"),
        env={
            "CMAKE_ARGS": " ".join(
                (
                    "-DGGML_NATIVE=OFF",
                    "-DGGML_CUDA=OFF",
                    "-DGGML_METAL=OFF",
                    "-DGGML_VULKAN=OFF",
                    "-DGGML_BLAS=OFF",
                    "-DLLAVA_BUILD=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF",
                    "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_BUILD_TOOLS=OFF",
                    "-DLLAMA_BUILD_SERVER=OFF",
                )
            ),
            "CMAKE_BUILD_PARALLEL_LEVEL": "2",
        },
    )
)

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
# Words of prompts beyond the workload's vocabulary: the default prompt and the template's roles.
EXTRA_WORDS = ("load", "testing", "user", "assistant", "system")

# Run with the server venv's python: {"out": path, "words": [...], "template": str} on stdin.
BUILD_MODEL = r"""
import json, sys
import numpy as np
import gguf

spec = json.load(sys.stdin)
tokens, types = ["<unk>", "<s>", "</s>"], [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
tokens += [f"<0x{b:02X}>" for b in range(256)]
types += [gguf.TokenType.BYTE] * 256
pieces = ["\u2581"] + [chr(c) for c in range(33, 127)]
for word in spec["words"]:
    pieces += ["\u2581" + word[:n] for n in range(1, len(word) + 1)]
pieces = list(dict.fromkeys(pieces))
tokens += pieces
types += [gguf.TokenType.NORMAL] * len(pieces)
# SentencePiece merges the best-scored pair first: longer pieces score higher.
scores = [0.0] * (3 + 256) + [float(len(p)) for p in pieces]
allowed = np.array([t == gguf.TokenType.NORMAL and tok.lstrip("\u2581").isalnum() for tok, t in zip(tokens, types)])

n_vocab, n_embd, n_ff, n_layer, n_head = len(tokens), 64, 128, 2, 4
rng = np.random.default_rng(0)
def normal(*shape, std=0.1):
    return (rng.standard_normal(shape) * std).astype(np.float32)
embd = normal(n_vocab, n_embd, std=1.0)
embd[:, 0] = 1.0  # the constant dimension (module docstring)
output = normal(n_vocab, n_embd, std=1.0)
output[:, 0] = 0.0
output[~allowed] = 0.0
output[~allowed, 0] = -1000.0

writer = gguf.GGUFWriter(spec["out"], "llama")
writer.add_name("loadbench-tiny-llama")
writer.add_file_type(gguf.LlamaFileType.ALL_F32)
writer.add_vocab_size(n_vocab)
writer.add_context_length(2048)
writer.add_embedding_length(n_embd)
writer.add_block_count(n_layer)
writer.add_feed_forward_length(n_ff)
writer.add_head_count(n_head)
writer.add_head_count_kv(n_head)
writer.add_layer_norm_rms_eps(1e-5)
writer.add_rope_dimension_count(n_embd // n_head)
writer.add_tokenizer_model("llama")
writer.add_token_list(tokens)
writer.add_token_scores(scores)
writer.add_token_types(types)
writer.add_unk_token_id(0)
writer.add_bos_token_id(1)
writer.add_eos_token_id(2)
writer.add_add_bos_token(True)
writer.add_add_eos_token(False)
writer.add_chat_template(spec["template"])
writer.add_tensor("token_embd.weight", embd)
writer.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
writer.add_tensor("output.weight", output)
for i in range(n_layer):
    attn_output, ffn_down = normal(n_embd, n_embd), normal(n_embd, n_ff)
    attn_output[0] = ffn_down[0] = 0.0  # nothing writes to the constant dimension
    for name, tensor in (
        ("attn_norm", np.ones(n_embd, np.float32)),
        ("attn_q", normal(n_embd, n_embd)),
        ("attn_k", normal(n_embd, n_embd)),
        ("attn_v", normal(n_embd, n_embd)),
        ("attn_output", attn_output),
        ("ffn_norm", np.ones(n_embd, np.float32)),
        ("ffn_gate", normal(n_ff, n_embd)),
        ("ffn_up", normal(n_ff, n_embd)),
        ("ffn_down", ffn_down),
    ):
        writer.add_tensor(f"blk.{i}.{name}.weight", tensor)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
print(json.dumps({"vocab": n_vocab, "generable": int(allowed.sum())}))
"""


def build_model(python: Path, out: Path) -> dict[str, int]:
    """Write the tiny GGUF with the server venv's ``python``; its vocabulary sizes."""
    spec = {"out": str(out), "words": [*VOCABULARY, *EXTRA_WORDS], "template": CHAT_TEMPLATE}
    done = subprocess.run(
        [str(python), "-c", BUILD_MODEL],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the GGUF failed ({done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@dataclass
class LlamaCppServer:
    """A running llama-cpp-python server: its URL, the GGUF it serves and the model's vocabulary."""

    server: Running
    url: str
    model_path: Path
    vocab: dict[str, int]


@contextmanager
def start_llamacpp(workdir: Path, *, interrupt_requests: bool = False) -> Iterator[LlamaCppServer]:
    """Build the venv (or skip), write the GGUF, start the server; stop it when the block ends.

    ``interrupt_requests``: the server's option of that name (its default is true: a stream is
    cut as soon as another request waits for the model; docs/servers.md).
    """
    venv = venv_or_skip(LLAMACPP)
    workdir.mkdir(parents=True, exist_ok=True)
    model = workdir / "tiny-llama.gguf"
    vocab = build_model(LLAMACPP.python, model)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [venv / "bin" / "python", "-m", "llama_cpp.server", "--model", model]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_threads_batch", "1"]
    command += ["--n_ctx", "2048", "--interrupt_requests", str(interrupt_requests).lower()]
    with running(
        command,
        url=url,
        ready=http_ready(f"{url}/v1/models"),
        log=workdir / "llamacpp.log",
        cwd=workdir,
        env={"OMP_NUM_THREADS": "1"},
    ) as server:
        yield LlamaCppServer(server, url, model, vocab)
