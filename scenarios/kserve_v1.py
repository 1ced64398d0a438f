"""KServe v1 protocol: POST ``/v1/models/<model>:predict`` (TF Serving's REST wire format).

    loadbench run --target URL --scenario kserve_v1 [--model NAME] (--payload JSON | --data FILE.jsonl)
    locust -f scenarios/kserve_v1.py --host URL [same options]

The model comes from ``--model`` or the first one ``GET /v1/models`` lists (``{"models":
[...]}``). Each body is a data row: a dict holding ``instances`` (or ``inputs``) is sent as it
is; any other row is one instance (``{"instances": [row]}``). A response is a success when it
is JSON with ``predictions`` (``outputs`` for an ``inputs`` request).

Quality: a ``--data`` row's ``_expected`` is the label its answer should carry; the prediction
is the response's value at ``--extract PATH`` (default: the first of ``predictions.0``,
``outputs.0``), both written to ``requests.csv`` (`loadbench.scenario.labels`; docs/metrics.md, Quality).
"""

from __future__ import annotations

from typing import Any

from locust import events

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.protocols.probe import discover_v1_model
from loadbench.scenario import PredictUser, add_predict_options, headers_from_options, on_setup, tls_verify
from loadbench.scenario.predict import say_at_start


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--model", default=None, help="model name (default: the first from GET /v1/models)")
    add_predict_options(parser, payload_help='A row, or a full {"instances": [...]} body.')


def _model_path(environment: Any) -> str:
    options = environment.parsed_options
    model = options.model or discover_v1_model(
        environment.host, headers_from_options(options), tls_verify(options)
    )
    found = "(--model)" if options.model else "from GET /v1/models"
    # v1 has no input metadata to report: what is sent is the user's rows.
    say_at_start(
        environment,
        f"kserve_v1: model {model} {found}; v1 lists no inputs: sending the --payload/--data rows",
    )
    return f"/v1/models/{model}:predict"


class KServeV1User(PredictUser):
    pass


@on_setup
def _load(environment: Any) -> None:
    KServeV1User.set_up(environment, _model_path)
