"""TorchServe inference API: POST ``/predictions/<model>[/<version>]``.

    loadbench run --target URL --scenario torchserve [--model NAME] (--payload JSON | --data FILE)
    locust -f scenarios/torchserve.py --host URL [same options]

The model comes from ``--model`` or the first one TorchServe's management API lists (``GET
/models``). That API has its own port (8081 by default): ``--management URL``, else the first
that answers of the target itself, the target's port + 1 and port 8081 on the target's host;
when none does, pass ``--management URL`` or ``--model NAME``. The model's workers and batch
settings (``GET /models/<model>``) are said in one line at start.
``--data FILE.jsonl`` sends each line as a JSON body; ``--data`` with any other file (an image,
audio) sends its bytes as the one body, with ``--content-type``. Handlers answer anything
(JSON, text, bytes), so a response is a success when its status is below 400.

Quality: a ``--data FILE.jsonl`` row's ``_expected`` is the label its answer should carry; the
prediction is the JSON response's value at ``--extract PATH`` (default: the first of
``prediction``, ``predictions.0``, ``label``, ``labels.0``, ``outputs.0.data.0``; a handler that
answers ``{"tabby": 0.41, ...}`` needs e.g. ``--extract`` on a key of its own), both written to
``requests.csv`` (`loadbench.scenario.labels`; docs/metrics.md, Quality). A body that is not JSON gives
no prediction: a wrong answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from locust import events, task

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.errors import ScenarioError, UsageError
from loadbench.protocols.extract import Extractor
from loadbench.protocols.probe import find_torchserve_model
from loadbench.scenario import (
    ModelUser,
    Payloads,
    add_request_options,
    headers_from_options,
    on_setup,
    tls_verify,
)
from loadbench.scenario.labels import (
    add_extract_option,
    check_payload_labels,
    extractor_from_options,
    post_labelled,
    request_extras,
)
from loadbench.scenario.predict import say_at_start

PATH: str = ""
PAYLOADS: Payloads | None = None
RAW: bytes | None = None
EXTRACTOR: Extractor | None = None


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--model", default=None, help="model name (default: the first from GET /models)")
    parser.add_argument("--model-version", default=None, help="model version (default: the default version)")
    parser.add_argument(
        "--management",
        default=None,
        metavar="URL",
        help="TorchServe's management API, to list models and their workers "
        "(default: the first that answers of the target, its port + 1, port 8081)",
    )
    parser.add_argument(
        "--content-type",
        default="application/octet-stream",
        help="Content-Type of a raw --data file's bytes (default application/octet-stream)",
    )
    add_extract_option(parser)
    add_request_options(parser, payload_help="--data FILE that is not .jsonl: its bytes are the body.")


@on_setup
def _load(environment: Any) -> None:
    global PATH, PAYLOADS, RAW, EXTRACTOR
    options = environment.parsed_options
    EXTRACTOR = extractor_from_options(options)
    found = find_torchserve_model(
        environment.host,
        headers_from_options(options),
        tls_verify(options),
        options.management,
        options.model,
    )
    PATH = f"/predictions/{found.model}" + (f"/{options.model_version}" if options.model_version else "")
    say_at_start(environment, f"torchserve: {found.note}")
    data = Path(options.data) if options.data else None
    if data is not None and data.suffix.lower() not in (".jsonl", ".json") and not options.payload:
        try:
            RAW = data.read_bytes()
        except OSError as exc:
            raise ScenarioError(f"cannot read data file {data}: {exc.strerror or exc}") from None
        return
    if not options.payload and not options.data:
        # Said here, after discovery: the model was found, only the body is missing.
        raise UsageError(
            f"{found.note}; TorchServe cannot say what its handler takes: pass --payload JSON, "
            "--data FILE.jsonl (one JSON body a line) or --data FILE (its bytes as the body, --content-type)"
        )
    PAYLOADS = Payloads.from_options(options)
    check_payload_labels(PAYLOADS)


class TorchServeUser(ModelUser):
    @task
    def predict(self) -> None:
        if RAW is not None:
            headers = {"Content-Type": self.environment.parsed_options.content_type, **self.headers}
            self.client.post(PATH, data=RAW, headers=headers, name=PATH)
            return
        assert PAYLOADS is not None and EXTRACTOR is not None
        body, meta = PAYLOADS.next()
        if not request_extras(meta) and not EXTRACTOR.explicit:
            self.client.post(PATH, json=body, headers=self.headers, name=PATH)
            return
        post_labelled(self, PATH, body, meta, EXTRACTOR, check=False)
