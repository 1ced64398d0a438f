"""Triton Inference Server through PyTriton, real: its venv, a numpy digits classifier, the server.

PyTriton (``nvidia-pytriton``) ships a ``tritonserver`` binary and runs a Python function as a
Triton model: here a nearest-centroid classifier over loadbench's digits rows (fitted on the even
rows), bound with ``triton.bind`` as ``digits``: input ``inputs`` FP32 ``[-1, 64]``, output
``predictions`` INT64 ``[-1, 1]`` (``-1``: the batch dimension of ``max_batch_size``). PyTriton
restricts Triton's model-repository API (the index) to a header token by default, which is what
loadbench meets on a PyTriton server.

Triton's Python backend runs a stub linked against ``libpython3.X.so``: the directory of the
server venv's own Python library goes first on ``LD_LIBRARY_PATH``, or the stub may find
another Python of the same version (the system's) or none.

Built in the server's venv (``BUILD``), which also predicts offline, with the same function the
server binds, ten rows chosen one per digit (half of them rows the model gets wrong).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realserver import Running, free_port, http_ready, running, venv_or_skip
from venvs import ServerEnv, register

ENV = register(ServerEnv("triton", steps=(("nvidia-pytriton==0.7.0",),)))
MODEL = "digits"
START_TIMEOUT_S = 300.0

# Shared by the offline build and the server: the classifier, in float32 numpy.
MODEL_PY = r"""
import json
import numpy as np


def load_rows(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    x = np.array([r["inputs"][0] for r in rows], dtype=np.float32)
    y = np.array([int(r["_expected"]) for r in rows])
    return x, y


def fit(x, y):
    train = np.arange(len(y)) % 2 == 0
    centroids = np.stack([x[train & (y == k)].mean(0) for k in range(10)]).astype(np.float32)
    # argmin |x - c|^2 == argmax 2 c.x - |c|^2
    return 2 * centroids, -(centroids * centroids).sum(1)


def predict(weights, bias, x):
    return (x.astype(np.float32) @ weights.T + bias).argmax(1).astype(np.int64)
"""

# DIGITS_JSONL OUT_DIR: weights.npz and offline.json (the ten rows, labels, offline predictions).
BUILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from digits_model import fit, load_rows, predict

x, y = load_rows(sys.argv[1])
weights, bias = fit(x, y)
np.savez(sys.argv[2] + "/weights.npz", weights=weights, bias=bias)
predicted = predict(weights, bias, x)
chosen = []
for k in range(10):
    # Even digits: a row the model gets wrong; odd: one it gets right.
    want_wrong = k % 2 == 0
    chosen.append(next(i for i in range(len(y)) if y[i] == k and bool(predicted[i] != k) == want_wrong))
picked = [{"row": i, "inputs": x[i].tolist(), "label": int(y[i]), "predicted": int(predicted[i])} for i in chosen]
json.dump({
    "accuracy_all": float((predicted == y).mean()),
    "rows": picked,
    "accuracy": sum(p["label"] == p["predicted"] for p in picked) / len(picked),
}, open(sys.argv[2] + "/offline.json", "w"))
"""

# WORK_DIR HTTP_PORT GRPC_PORT METRICS_PORT: serve until SIGTERM. The token of the restricted APIs
# (PyTriton makes one up unless given) comes in $TRITON_ACCESS_TOKEN, so a test can send it.
SERVE = r"""
import os, sys
import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig
sys.path.insert(0, sys.argv[1])
from digits_model import predict

work, http, grpc, metrics = sys.argv[1], *map(int, sys.argv[2:5])
saved = np.load(work + "/weights.npz")
weights, bias = saved["weights"], saved["bias"]


@batch
def infer(inputs):
    return {"predictions": predict(weights, bias, inputs)[:, None]}


config = TritonConfig(
    http_address="127.0.0.1", http_port=http, grpc_address="127.0.0.1", grpc_port=grpc,
    metrics_address="127.0.0.1", metrics_port=metrics,
)
security = TritonSecurityConfig(access_token=os.environ["TRITON_ACCESS_TOKEN"])
with Triton(config=config, workspace=work + "/workspace", security_config=security) as triton:
    triton.bind(
        model_name="digits",
        infer_func=infer,
        inputs=[Tensor(name="inputs", dtype=np.float32, shape=(64,))],
        outputs=[Tensor(name="predictions", dtype=np.int64, shape=(1,))],
        config=ModelConfig(max_batch_size=16),
    )
    triton.serve()
"""


@dataclass
class TritonServer:
    """A started PyTriton: its HTTP, gRPC and metrics ports and the offline predictions."""

    server: Running
    url: str
    grpc_port: int
    metrics: str
    offline: dict[str, Any]
    work: Path
    token: str  # of the restricted APIs (header triton-access-token)


def build_model(python: Path, work: Path, digits: Path) -> dict[str, Any]:
    """Fit the classifier into ``work/weights.npz``; the offline predictions of the ten rows."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "digits_model.py").write_text(MODEL_PY)
    (work / "build.py").write_text(BUILD)
    (work / "serve.py").write_text(SERVE)
    subprocess.run([python, work / "build.py", digits, work], check=True, timeout=300, capture_output=True)
    offline: dict[str, Any] = json.loads((work / "offline.json").read_text())
    return offline


def python_libdir(python: Path) -> str:
    """Where the venv's Python keeps its ``libpython3.X.so`` (pyenv: ``<prefix>/lib``)."""
    command = [python, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


def _model_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{MODEL}/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def triton(work: Path, digits: Path) -> Iterator[TritonServer]:
    """PyTriton serving the digits model on free HTTP, gRPC and metrics ports of 127.0.0.1."""
    venv = venv_or_skip(ENV)
    python = venv / "bin" / "python"
    offline = build_model(python, work, digits)
    http, grpc, metrics = free_port(), free_port(), free_port()
    while len({http, grpc, metrics}) < 3:
        grpc, metrics = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    libdir = python_libdir(python)
    token = secrets.token_urlsafe(16)
    env = {
        "LD_LIBRARY_PATH": os.pathsep.join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH")) if p),
        "TRITON_ACCESS_TOKEN": token,
    }
    ready = http_ready(f"{url}/v2/health/ready")
    with running(
        [python, work / "serve.py", work, http, grpc, metrics],
        url=url,
        ready=lambda: ready() and _model_ready(url),
        log=work / "triton.log",
        cwd=work,
        env=env,
        timeout_s=START_TIMEOUT_S,
    ) as server:
        yield TritonServer(server, url, grpc, f"http://127.0.0.1:{metrics}", offline, work, token)
