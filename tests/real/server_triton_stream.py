"""A decoupled model on a real Triton (PyTriton 0.7, the venv of tests/real/server_triton.py) for
``ModelStreamInfer``: ``counter`` takes ``inputs`` FP32 ``[-1, 64]`` and answers each request
`ANSWERS` times, `GAP_S` apart, its ``count`` output INT64 ``[1]`` 0, 1, ... (a generator infer
function, ``ModelConfig(batching=False, decoupled=True)``, no ``@batch``).
"""

from __future__ import annotations

import os
import secrets
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from realserver import Running, free_port, http_ready, running, venv_or_skip
from server_triton import ENV, START_TIMEOUT_S, python_libdir

MODEL = "counter"
ANSWERS = 4
GAP_S = 0.02

# WORK_DIR HTTP_PORT GRPC_PORT METRICS_PORT ANSWERS GAP_S: serve until SIGTERM.
SERVE = r"""
import os, sys, time
import numpy as np
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

work, http, grpc, metrics, answers = sys.argv[1], *map(int, sys.argv[2:6])
gap_s = float(sys.argv[6])


def infer(requests):
    for number in range(answers):
        if number:
            time.sleep(gap_s)
        yield [{"count": np.array([number], dtype=np.int64)} for _ in requests]


config = TritonConfig(
    http_address="127.0.0.1", http_port=http, grpc_address="127.0.0.1", grpc_port=grpc,
    metrics_address="127.0.0.1", metrics_port=metrics,
)
security = TritonSecurityConfig(access_token=os.environ["TRITON_ACCESS_TOKEN"])
with Triton(config=config, workspace=work + "/workspace", security_config=security) as triton:
    triton.bind(
        model_name="counter",
        infer_func=infer,
        inputs=[Tensor(name="inputs", dtype=np.float32, shape=(-1, 64))],
        outputs=[Tensor(name="count", dtype=np.int64, shape=(1,))],
        config=ModelConfig(batching=False, decoupled=True),
    )
    triton.serve()
"""


@dataclass
class StreamingTriton:
    server: Running
    url: str
    grpc: str  # grpc://127.0.0.1:PORT


def _model_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{MODEL}/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def streaming_triton(work: Path) -> Iterator[StreamingTriton]:
    """PyTriton serving `MODEL` (decoupled) on free ports of 127.0.0.1."""
    python = venv_or_skip(ENV) / "bin" / "python"
    work.mkdir(parents=True, exist_ok=True)
    (work / "serve.py").write_text(SERVE)
    http, grpc, metrics = free_port(), free_port(), free_port()
    while len({http, grpc, metrics}) < 3:
        grpc, metrics = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    libdir = python_libdir(python)
    env = {
        "LD_LIBRARY_PATH": os.pathsep.join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH")) if p),
        "TRITON_ACCESS_TOKEN": secrets.token_urlsafe(16),
    }
    ready = http_ready(f"{url}/v2/health/ready")
    with running(
        [python, work / "serve.py", work, http, grpc, metrics, str(ANSWERS), str(GAP_S)],
        url=url,
        ready=lambda: ready() and _model_ready(url),
        log=work / "triton.log",
        cwd=work,
        env=env,
        timeout_s=START_TIMEOUT_S,
    ) as server:
        yield StreamingTriton(server, url, f"grpc://127.0.0.1:{grpc}")
