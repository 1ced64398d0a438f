"""TorchServe, real: its venv, a small TorchScript digits classifier archived offline, and the server.

The model is a nearest-centroid classifier over loadbench's digits rows (fitted on the even rows,
written as one linear layer, so TorchScript serializes it), archived with torch-model-archiver and
a tiny handler that takes ``{"inputs": [[64 numbers], ...]}`` and answers ``{"predictions":
[label, ...]}``. The handler refuses another shape with TorchServe's ``PredictionException``
(HTTP 400 and its message), as a handler should; the words of an unknown model are TorchServe's.

Built in the server's venv (``BUILD``), which also predicts, offline and with the same TorchScript
file, ten rows chosen one per digit (half of them rows the model gets wrong), so a test can hold
every answer under load to the offline prediction of its row.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realserver import Running, free_ports, http_ready, running, venv_or_skip
from venvs import ServerEnv, register

ENV = register(
    ServerEnv(
        "torchserve",
        # torch pinned in a step of its own, first: the CPU wheel on this disk, so that nothing
        # later pulls another build. TorchServe imports PyYAML without declaring it.
        steps=(
            ("torch==2.13.0",),
            ("torchserve==0.12.0", "torch-model-archiver==0.12.0", "PyYAML==6.0.2"),
        ),
        commands=("java",),
    )
)
MODEL = "digits"
BATCH_SIZE = 4
MAX_BATCH_DELAY_MS = 20

# Run with the server venv's python: DIGITS_JSONL OUT_DIR. Writes model.pt, handler.py and
# offline.json (the ten rows, their labels and the TorchScript model's predictions).
BUILD = r"""
import json, sys
from pathlib import Path
import torch

digits, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = [json.loads(line) for line in digits.read_text().splitlines() if line.strip()]
x = torch.tensor([r["inputs"][0] for r in rows], dtype=torch.float32)
y = torch.tensor([int(r["_expected"]) for r in rows])
train = torch.arange(len(rows)) % 2 == 0
centroids = torch.stack([x[train & (y == k)].mean(0) for k in range(10)])
linear = torch.nn.Linear(64, 10)
with torch.no_grad():  # argmin |x - c|^2 == argmax 2 c.x - |c|^2
    linear.weight.copy_(2 * centroids)
    linear.bias.copy_(-(centroids * centroids).sum(1))
torch.jit.script(linear.eval()).save(str(out / "model.pt"))
model = torch.jit.load(str(out / "model.pt"))
with torch.no_grad():
    predicted = model(x).argmax(1)
chosen = []
for k in range(10):
    # Even digits: a row the model gets wrong; odd: one it gets right (7 is never wrong).
    want_wrong = k % 2 == 0
    for i in range(len(rows)):
        if int(y[i]) == k and bool(predicted[i] != k) == want_wrong:
            chosen.append(i)
            break
picked = [{"row": i, "inputs": rows[i]["inputs"][0], "label": int(y[i]), "predicted": int(predicted[i])} for i in chosen]
(out / "offline.json").write_text(json.dumps({
    "accuracy_all": float((predicted == y).float().mean()),
    "rows": picked,
    "accuracy": sum(p["label"] == p["predicted"] for p in picked) / len(picked),
}))
"""

HANDLER = r'''
import json
import torch
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException


class DigitsHandler(BaseHandler):
    """{"inputs": [[64 numbers], ...]} -> {"predictions": [label, ...]}, one answer per request."""

    def preprocess(self, data):
        batch = []
        for request in data:
            body = request.get("body") or request.get("data")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            rows = body.get("inputs") if isinstance(body, dict) else None
            if not isinstance(rows, list) or not rows:
                raise PredictionException('the body must be {"inputs": [[64 numbers], ...]}', 400)
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != 64:
                    size = len(row) if isinstance(row, list) else type(row).__name__
                    raise PredictionException(f"row {i} has {size} values, expected 64", 400)
            batch.append(rows)
        self.sizes = [len(rows) for rows in batch]
        return torch.tensor([row for rows in batch for row in rows], dtype=torch.float32)

    def postprocess(self, data):
        labels = data.argmax(1).tolist()
        answers, start = [], 0
        for size in self.sizes:
            answers.append({"predictions": labels[start : start + size]})
            start += size
        return answers
'''


@dataclass
class TorchServe:
    """A started TorchServe: its three APIs and the offline predictions of the ten chosen rows."""

    server: Running
    inference: str
    management: str
    metrics: str
    offline: dict[str, Any]
    work: Path


def build_model(python: Path, work: Path, digits: Path) -> dict[str, Any]:
    """Fit, script and archive the model into ``work/store``; the offline predictions."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "build.py").write_text(BUILD)
    (work / "handler.py").write_text(HANDLER)
    subprocess.run([python, work / "build.py", digits, work], check=True, timeout=600, capture_output=True)
    store = work / "store"
    store.mkdir(exist_ok=True)
    archive = [python.parent / "torch-model-archiver", "--model-name", MODEL, "--version", "1.0"]
    archive += ["--serialized-file", work / "model.pt", "--handler", work / "handler.py"]
    subprocess.run(
        [*archive, "--export-path", store, "--force"], check=True, timeout=300, capture_output=True
    )
    offline: dict[str, Any] = json.loads((work / "offline.json").read_text())
    return offline


def _config(work: Path, ports: list[int]) -> Path:
    models = {
        MODEL: {
            "1.0": {
                "defaultVersion": True,
                "marName": f"{MODEL}.mar",
                "minWorkers": 1,
                "maxWorkers": 1,
                "batchSize": BATCH_SIZE,
                "maxBatchDelay": MAX_BATCH_DELAY_MS,
                "responseTimeout": 120,
            }
        }
    }
    lines = [
        f"inference_address=http://127.0.0.1:{ports[0]}",
        f"management_address=http://127.0.0.1:{ports[1]}",
        f"metrics_address=http://127.0.0.1:{ports[2]}",
        "disable_token_authorization=true",
        f"load_models={MODEL}.mar",
        "models=" + json.dumps(models),
        "default_workers_per_model=1",
        "number_of_netty_threads=2",
        "install_py_dep_per_model=false",
        "vmargs=-Xmx512m -XX:+UseSerialGC",
    ]
    path = work / "config.properties"
    path.write_text("\n".join(lines) + "\n")
    return path


def _model_ready(management: str) -> bool:
    try:
        with urllib.request.urlopen(f"{management}/models/{MODEL}", timeout=2) as response:
            description = json.load(response)
    except (OSError, ValueError):
        return False
    workers = description[0].get("workers", []) if isinstance(description, list) and description else []
    return any(worker.get("status") == "READY" for worker in workers)


@contextmanager
def torchserve(work: Path, digits: Path) -> Iterator[TorchServe]:
    """TorchServe with the digits model loaded at start, on three consecutive free ports
    (inference, management = inference + 1, metrics), token authorization off."""
    venv = venv_or_skip(ENV)
    python = venv / "bin" / "python"
    offline = build_model(python, work, digits)
    ports = free_ports(3)
    inference, management, metrics = (f"http://127.0.0.1:{port}" for port in ports)
    config = _config(work, ports)
    command = [venv / "bin" / "torchserve", "--start", "--foreground", "--ncs", "--disable-token-auth"]
    command += ["--model-store", work / "store", "--ts-config", config]
    ping = http_ready(f"{inference}/ping")
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        # TorchServe keeps its pid file in the temp directory and refuses to start beside another.
        "TMPDIR": str(work),
        "TEMP": str(work),
        "LOG_LOCATION": str(work / "logs"),
        "METRICS_LOCATION": str(work / "logs"),
    }
    with running(
        command,
        url=inference,
        ready=lambda: ping() and _model_ready(management),
        log=work / "torchserve.log",
        cwd=work,
        env=env,
    ) as server:
        yield TorchServe(server, inference, management, metrics, offline, work)
