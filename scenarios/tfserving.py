"""TensorFlow Serving REST: POST ``/v1/models/<model>[/versions/<n>]:predict``.

    loadbench run --target URL --scenario tfserving --model NAME (--payload JSON | --data FILE.jsonl)
    locust -f scenarios/tfserving.py --host URL [same options]

TF Serving lists no models, so ``--model`` is needed unless a front end answers ``GET
/v1/models`` with ``{"models": [...]}``; the model's status (``GET /v1/models/<model>``) is
checked before the load. Each body is a data row: a dict holding ``instances`` (row format) or
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
from loadbench.protocols.probe import discover_tfserving_model, tfserving_model_status
from loadbench.scenario import PredictUser, add_predict_options, headers_from_options, on_setup, tls_verify


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
    tfserving_model_status(environment.host, model, headers, verify)
    version = f"/versions/{options.model_version}" if options.model_version else ""
    return f"/v1/models/{model}{version}:predict"


class TFServingUser(PredictUser):
    pass


@on_setup
def _load(environment: Any) -> None:
    TFServingUser.set_up(environment, _model_path)
