"""Open Inference Protocol v2 (KServe, Triton, MLServer): POST ``/v2/models/<model>/infer``.

    loadbench run --target URL --scenario kserve_v2 [--model NAME] [--payload JSON | --data FILE.jsonl]
    locust -f scenarios/kserve_v2.py --host URL [same options]

The model name comes from ``--model`` or the server's model list: the first READY model of
``POST /v2/repository/index`` (Triton, MLServer), else KServe's ``GET /v2/models``. An index that
is restricted (PyTriton, Triton's ``--http-restricted-api``) or lists nothing stops the start with
one line: pass ``--model NAME``. Without ``--payload``/``--data``, one request per batch of
``--batch`` rows is built from the model's input metadata (``GET /v2/models/<model>``): every
input tensor filled with seeded random values, ``-1`` dimensions set to the batch size. Metadata
that lists no inputs (MLServer's may not) stops the start with one line: pass ``--payload`` or
``--data``. What was found is said in one line at start. A response is a success when it is
JSON with an ``outputs`` list.

Quality: a ``--data`` line's ``_expected`` is the label its answer should carry; the
prediction is the response's value at ``--extract PATH`` (default ``outputs.0.data.0``: the
first output's first element). Both go to ``requests.csv``; see docs/metrics.md.
"""

from __future__ import annotations

from typing import Any

from locust import events, task

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.errors import UsageError
from loadbench.protocols.bodies import v2_synthetic_request
from loadbench.protocols.extract import Extractor
from loadbench.protocols.probe import find_v2_model, v2_model_metadata
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
)
from loadbench.scenario.predict import say_at_start

MODEL: str = ""
PAYLOADS: Payloads | None = None
EXTRACTOR: Extractor | None = None
EXTRACT_DEFAULTS = ("outputs.0.data.0",)  # the first output's first element


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--model", default=None, help="model name (default: the first model the server lists)"
    )
    parser.add_argument("--batch", type=int, default=1, help="rows per synthetic request (default 1)")
    add_extract_option(parser, EXTRACT_DEFAULTS)
    add_request_options(parser, payload_help="Default: random tensors shaped by the model's metadata.")


@on_setup
def _load(environment: Any) -> None:
    global MODEL, PAYLOADS, EXTRACTOR
    options = environment.parsed_options
    EXTRACTOR = extractor_from_options(options, EXTRACT_DEFAULTS)
    headers, verify = headers_from_options(options), tls_verify(options)
    if options.batch < 1:
        raise UsageError(f"--batch must be 1 or more, not {options.batch}")
    found = None if options.model else find_v2_model(environment.host, headers, verify)
    MODEL = found.model if found else options.model
    said = found.note if found else f"model {MODEL} (--model)"
    default = None
    if not options.payload and not options.data:
        metadata = v2_model_metadata(environment.host, MODEL, headers, verify)
        default = [v2_synthetic_request(metadata, options.batch, seed) for seed in range(16)]
        tensors = ", ".join(f"{i['name']} {i['datatype']} {i['shape']}" for i in default[0]["inputs"])
        said += f"; random {tensors} from GET /v2/models/{MODEL} (--payload or --data for real inputs)"
    PAYLOADS = Payloads.from_options(options, default=default)
    check_payload_labels(PAYLOADS)
    say_at_start(environment, f"kserve_v2: {said}")


class KServeV2User(ModelUser):
    @task
    def infer(self) -> None:
        assert PAYLOADS is not None and EXTRACTOR is not None
        body, meta = PAYLOADS.next()
        path = f"/v2/models/{MODEL}/infer"
        post_labelled(self, path, body, meta, EXTRACTOR, answer_key="outputs")
