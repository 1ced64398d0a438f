"""TensorFlow Serving REST: POST ``/v1/models/<model>[/versions/<n>]:predict``.

    loadbench run --target URL --scenario tfserving --model NAME (--payload JSON | --data FILE.jsonl)
    locust -f scenarios/tfserving.py --host URL [same options]

TF Serving lists no models, so ``--model`` is needed unless a front end answers ``GET
/v1/models`` with ``{"models": [...]}``; the model's status (``GET /v1/models/<model>``) is
checked before the load, and its signature's inputs (``GET /v1/models/<model>/metadata``) are
said in one line at start. Without ``--payload``/``--data``, the start stops with one line that
names those inputs and an example body to pass. Each body is a data row: a dict holding ``instances`` (row format) or
``inputs`` (columnar format) is sent as it is; any other row is one instance
(``{"instances": [row]}``). A response is a success when it is JSON with ``predictions`` (for
``instances``) or ``outputs`` (for ``inputs``).

Quality: a ``--data`` row's ``_expected`` is the label its answer should carry; the prediction
is the response's value at ``--extract PATH`` (default: the first of ``predictions.0``,
``outputs.0``), both written to ``requests.csv`` (`loadbench.scenario.labels`; docs/metrics.md, Quality).
"""

from __future__ import annotations

from typing import Any

from locust import events

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.errors import UsageError
from loadbench.protocols.bodies import describe_tensors, tfserving_example
from loadbench.protocols.probe import discover_tfserving_model, tfserving_model_status, tfserving_signature
from loadbench.scenario import PredictUser, add_predict_options, headers_from_options, on_setup, tls_verify
from loadbench.scenario.predict import say_at_start


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--model", default=None, help="model name (TF Serving lists none: give it)")
    parser.add_argument("--model-version", default=None, help="model version (default: the latest)")
    add_predict_options(parser, payload_help='A row, or a full {"instances": [...]} / {"inputs": ...} body.')


def _model_path(environment: Any) -> str:
    # TF Serving lists no models: the model's status is checked before the load instead.
    options = environment.parsed_options
    headers, verify = headers_from_options(options), tls_verify(options)
    model = options.model or discover_tfserving_model(environment.host, headers, verify)
    versions = tfserving_model_status(environment.host, model, headers, verify)
    path = f"/v1/models/{model}" + (f"/versions/{options.model_version}" if options.model_version else "")
    signature = tfserving_signature(environment.host, path, headers, verify)
    if isinstance(signature, str):
        wants = f"inputs are unknown ({signature})"
    else:
        wants = f"signature {signature[0]} takes {describe_tensors(signature[1]) or 'no inputs'}"
    if not options.payload and not options.data:
        example = '{"instances": [ROW]}' if isinstance(signature, str) else tfserving_example(signature[1])
        raise UsageError(
            f"tfserving needs a request body: model {model}'s {wants}; "
            f"pass --payload '{example}' or --data FILE.jsonl (one row or body a line)"
        )
    states = ", ".join(
        f"version {v.get('version')} {v.get('state')}" for v in versions if isinstance(v, dict)
    )
    say_at_start(environment, f"tfserving: model {model} ({states or 'no version status'}); {wants}")
    return f"{path}:predict"


class TFServingUser(PredictUser):
    pass


@on_setup
def _load(environment: Any) -> None:
    TFServingUser.set_up(environment, _model_path)
