"""MLServer (Seldon) serving a scikit-learn digits classifier, for the conformance tests.

    python tests/real/venvs.py build mlserver     # the venv, once (about a minute, cached)

The model is the demo's (StandardScaler + LogisticRegression on sklearn's bundled digits, the
same split as `loadbench.demo.model`), trained and saved with joblib by the server venv's own
python, so the pickle and the server agree on the scikit-learn version. Its
``model-settings.json`` declares no inputs, as most MLServer models in the wild do: the case in
which loadbench cannot build a request from the metadata.

`start_mlserver(workdir)` runs ``mlserver start`` with HTTP and gRPC on free ports and metrics
off; the yielded `MLServer` carries both ports (``url``, ``grpc_port``, ``grpc_target``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from realserver import Running, free_ports, http_ready, running, venv_or_skip
from venvs import ServerEnv, register

from loadbench.record.columnar import read_run_requests

MLSERVER = register(
    ServerEnv(
        "mlserver",
        # uvloop 0.22 broke MLServer 1.7.1's inference-pool workers (they die at start, the
        # model stays UNAVAILABLE): SeldonIO/MLServer#2286, open; 0.21 is the last that works.
        steps=(
            (
                "mlserver==1.7.1",
                "mlserver-sklearn==1.7.1",
                "scikit-learn==1.9.1",
                "joblib==1.6.0",
                "uvloop==0.21.0",
            ),
        ),
    )
)
MODEL = "digits"
DIGITS = Path(__file__).resolve().parents[2] / "loadbench" / "data" / "digits.jsonl"

# Run with the server venv's python: trains the classifier, saves it, and predicts the rows
# given on stdin ({"x": [[64 numbers], ...]} -> {"predictions": [...]}) offline.
TRAIN = """
import json, sys
import joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

x, y = load_digits(return_X_y=True)
x_train, _, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))  # the demo's model
model.fit(x_train, y_train)
joblib.dump(model, sys.argv[1])
rows = json.load(sys.stdin)["x"]
print(json.dumps({"predictions": [int(p) for p in model.predict(rows)]}))
"""


def build_model(python: Path, model_file: Path) -> list[int]:
    """Train and save the classifier with the server venv's ``python``; its offline predictions
    of the `digits_rows`."""
    done = subprocess.run(
        [str(python), "-c", TRAIN, str(model_file)],
        input=json.dumps({"x": digits_rows()[0]}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"training failed ({done.returncode}): {done.stderr[-2000:]}")
    return list(json.loads(done.stdout)["predictions"])


def write_model_repository(root: Path, model_file: Path, http_port: int, grpc_port: int) -> None:
    """``settings.json`` (ports, metrics off) and the model's ``model-settings.json`` (no inputs declared)."""
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,  # no metrics server, so no third port to find free
        "parallel_workers": 1,  # MLServer's default: one inference-pool process
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    model_dir = root / MODEL
    model_dir.mkdir(exist_ok=True)
    model_settings = {
        "name": MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model_file), "version": "v1"},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))


def digits_rows() -> tuple[list[list[float]], list[int]]:
    """The 360 held-out rows of `loadbench/data/digits.jsonl` and their labels."""
    lines = [json.loads(line) for line in DIGITS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [line["inputs"][0] for line in lines], [int(line["_expected"]) for line in lines]


@dataclass
class Labelled:
    """One held-out row per label, and what the served model answers for each offline."""

    rows: list[list[float]]
    labels: list[int]
    offline: dict[str, str]  # label -> the offline prediction of that label's row, as recorded

    def v2_bodies(self) -> list[dict[str, Any]]:
        """Open Inference Protocol infer requests, labelled."""
        return [v2_body(row) | {"_expected": y} for row, y in zip(self.rows, self.labels, strict=True)]

    def v1_bodies(self) -> list[dict[str, Any]]:
        """``:predict`` requests in `loadbench/data/digits.jsonl`'s format (``{"inputs": [row]}``), labelled."""
        return [{"inputs": [row], "_expected": y} for row, y in zip(self.rows, self.labels, strict=True)]


def one_row_per_label(predictions: list[int], wrong: int = 2) -> Labelled:
    """One row per label of `digits_rows`, ``wrong`` of them rows the model gets wrong offline
    (``predictions``: its offline answers for all of them), the others rows it gets right.

    With one row per label, a request's label says which row it sent, so every answer under load
    can be checked against that row's offline answer, whichever rows the run happened to send.
    """
    rows, labels = digits_rows()
    chosen: list[int] = []
    for label in sorted(set(labels)):
        mine = [i for i, y in enumerate(labels) if y == label]
        misses = [i for i in mine if predictions[i] != label]
        hits = [i for i in mine if predictions[i] == label]
        take_miss = misses and (sum(predictions[i] != labels[i] for i in chosen) < wrong or not hits)
        chosen.append(misses[0] if take_miss else hits[0])
    offline = {str(labels[i]): str(predictions[i]) for i in chosen}
    return Labelled([rows[i] for i in chosen], [labels[i] for i in chosen], offline)


def v2_body(row: list[float], name: str = "input-0") -> dict[str, Any]:
    """An Open Inference Protocol infer request of one row."""
    return {"inputs": [{"name": name, "shape": [1, len(row)], "datatype": "FP64", "data": row}]}


def write_jsonl(path: Path, bodies: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(body) + "\n" for body in bodies), encoding="utf-8")
    return path


@dataclass
class MLServer:
    """A running MLServer: HTTP base URL and gRPC port; the model's offline predictions of the `digits_rows`."""

    server: Running
    url: str
    http_port: int
    grpc_port: int
    model: str
    predictions: list[int]

    @property
    def grpc_target(self) -> str:
        """``host:port`` of its gRPC (Open Inference Protocol) endpoint."""
        return f"127.0.0.1:{self.grpc_port}"


@contextmanager
def start_mlserver(workdir: Path) -> Iterator[MLServer]:
    """Build the venv (or skip), train the model, start MLServer; stop it when the block ends."""
    venv = venv_or_skip(MLSERVER)
    workdir.mkdir(parents=True, exist_ok=True)
    model_file = workdir / "model.joblib"
    predictions = build_model(MLSERVER.python, model_file)
    http_port, grpc_port = free_ports(2)
    repository = workdir / "models"
    repository.mkdir(exist_ok=True)
    write_model_repository(repository, model_file, http_port, grpc_port)
    url = f"http://127.0.0.1:{http_port}"
    with running(
        [venv / "bin" / "mlserver", "start", repository],
        url=url,
        # The model's own readiness: /v2/health/ready answers 200 even when the model failed to load.
        ready=http_ready(f"{url}/v2/models/{MODEL}/ready"),
        log=workdir / "mlserver.log",
        cwd=repository,
    ) as server:
        yield MLServer(server, url, http_port, grpc_port, MODEL, predictions)


# --- checks both servers' tests share ---------------------------------------------------------

RUN = ("--users", "2", "--duration", "2s", "--warmup", "0s")  # long enough for 10+ requests


def one_line_error(stderr: str) -> str:
    """The one ``loadbench: error: ...`` line a refused start prints (and nothing else)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadbench: error: "), stderr
    return lines[0]


def failed_with_servers_words(returncode: int, stderr: str, out: Path, words: str) -> str:
    """Where the server's ``words`` reached the user: a refused start (exit 2, the words in its
    first line, nothing written: discovery, or the preflight request, whose refusal goes on to
    say what was sent and what to pass) or a run whose every request failed (exit 3, the words
    in the error table of ``summary.json``). Returns which."""
    if returncode == 2:
        first = stderr.strip().splitlines()[0]
        assert first.startswith("loadbench: error: ") and words in first, stderr
        assert not out.exists()
        return "refused at start"
    assert returncode == 3, stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["requests"]["ok"] == 0
    assert any(words in row.get("server_message", "") for row in summary["errors"]), summary["errors"]
    return "every request failed"


def assert_offline_accuracy(out: Path, labelled: Labelled, name: str) -> None:
    """The run at ``out`` sent ``labelled``'s rows as ``name``: no error, every answer the model's
    offline answer for its row, and the accuracy under load what those answers make offline."""
    requests = read_run_requests(out)
    assert len(requests) >= 10
    assert requests["ok"].all(), requests.loc[requests["ok"] == 0, "error"].unique()
    assert (requests["status"] == 200).all() and set(requests["name"]) == {name}
    expected, predicted = requests["expected"].astype(str), requests["predicted"].astype(str)
    assert (predicted == expected.map(labelled.offline)).all()
    offline_correct = expected.map(lambda label: labelled.offline[label] == label)
    quality = json.loads((out / "summary.json").read_text(encoding="utf-8"))["quality"]
    assert quality["n"] == len(requests)
    assert quality["correct"] == offline_correct.sum()
    assert quality["accuracy"] == pytest.approx(offline_correct.mean(), abs=5e-5)  # written to 4 places
    assert 0 < quality["accuracy"] < 1  # the rows hold misclassified ones: a real comparison
