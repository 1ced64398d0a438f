"""KServe's Python model server (``kserve.ModelServer``) with a small custom digits model.

    python tests/real/venvs.py build kserve     # the venv, once (cached)

The model class (`MODEL_SERVER`, run with the server venv's python) loads the same joblib
digits classifier as MLServer's (trained by `server_mlserver.build_model` in the KServe venv)
and answers both protocols the way KServe's own sklearn server does: v1 ``:predict``
(``{"instances": rows}`` or ``{"inputs": rows}`` -> ``{"predictions": labels}``) and v2
``infer``. Unlike MLServer's model it declares its input (``input-0`` FP32 ``[-1, 64]``) in the v2
metadata, as a custom `kserve.Model` may, so loadbench can build requests without data.

`start_kserve(workdir)` runs it with HTTP on a free port and gRPC off; the yielded `KServe`
carries the URL, the model name and its offline predictions of the held-out digits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from realserver import Running, free_port, http_ready, running, venv_or_skip
from server_mlserver import build_model
from venvs import ServerEnv, register

KSERVE = register(ServerEnv("kserve", steps=(("kserve==0.21.0", "scikit-learn==1.9.1", "joblib==1.6.0"),)))
MODEL = "digits"

MODEL_SERVER = """
import argparse
import joblib
import kserve
from kserve.utils.utils import get_predict_input, get_predict_response


class Digits(kserve.Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
        self.model = None
        self.load()

    def load(self):
        self.model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def get_input_types(self):
        return [{"name": "input-0", "datatype": "FP32", "shape": [-1, 64]}]

    def get_output_types(self):
        return [{"name": "output-0", "datatype": "INT64", "shape": [-1]}]

    def predict(self, payload, headers=None):
        rows = get_predict_input(payload)
        return get_predict_response(payload, self.model.predict(rows), self.name)


parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
parser.add_argument("--model_file", required=True)
args, _ = parser.parse_known_args()
kserve.ModelServer().start([Digits(args.model_name, args.model_file)])
"""


@dataclass
class KServe:
    """A running KServe model server: its HTTP base URL, model name; the model's offline predictions
    of `server_mlserver.digits_rows`."""

    server: Running
    url: str
    model: str
    predictions: list[int]


@contextmanager
def start_kserve(workdir: Path) -> Iterator[KServe]:
    """Build the venv (or skip), train the model, start KServe's server; stop it when the block ends."""
    venv_or_skip(KSERVE)
    workdir.mkdir(parents=True, exist_ok=True)
    model_file = workdir / "model.joblib"
    predictions = build_model(KSERVE.python, model_file)
    script = workdir / "digits_server.py"
    script.write_text(MODEL_SERVER)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        KSERVE.python, script, "--model_name", MODEL, "--model_file", model_file,
        "--http_port", str(port), "--enable_grpc", "false", "--workers", "1",
    ]  # fmt: skip
    with running(
        command,
        url=url,
        ready=http_ready(f"{url}/v2/health/ready"),
        log=workdir / "kserve.log",
        cwd=workdir,
    ) as server:
        yield KServe(server, url, MODEL, predictions)
