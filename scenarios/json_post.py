"""POST a JSON body to a model endpoint: any custom JSON API, or the demo's ``/predict``.

    loadbench run --target URL --scenario json_post [--path /predict] (--payload JSON | --data FILE.jsonl)
    loadbench run --demo --scenario json_post          (the demo's labeled digits, quality included)
    locust -f scenarios/json_post.py --host URL [same options]

A response counts as a success when its status is below 400 and its body is JSON (error kind
``invalid JSON`` otherwise); ``--no-check-json`` drops the second condition, for an endpoint that
answers another content type (or nothing, as with 204). ``--data`` sends each line of a
JSON Lines file in turn (``loadbench/data/digits.jsonl`` fits the demo endpoint; ``loadbench run
--demo`` sends it when given neither ``--payload`` nor ``--data``).

Quality: a line's ``_expected`` is the label its answer should carry; the prediction is taken
from the response at ``--extract PATH`` (default: the first of ``prediction``,
``predictions.0``, ``label``, ``labels.0``, ``outputs.0.data.0`` the response holds), and both
go to ``requests.csv`` (``expected``, ``predicted``). A line's ``_media_s`` (seconds of audio or
video it carries) goes to ``media_s``, for the real-time factor. See docs/metrics.md.
"""

from __future__ import annotations

from typing import Any

from locust import events, task

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.protocols.extract import Extractor
from loadbench.scenario import ModelUser, Payloads, add_request_options, on_setup
from loadbench.scenario.labels import (
    add_extract_option,
    check_payload_labels,
    extractor_from_options,
    post_labelled,
    request_extras,
)

PAYLOADS: Payloads | None = None
EXTRACTOR: Extractor | None = None


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    # Not in the web UI's start form: a query string may carry an api key (shown there in clear).
    parser.add_argument(
        "--path", default="/predict", help="URL path to POST to (default /predict)", include_in_web_ui=False
    )
    add_extract_option(parser)
    parser.add_argument(
        "--no-check-json",
        action="store_true",
        help="count any answer below HTTP 400 as a success, JSON or not (default: a body that is "
        "not JSON is an error of kind 'invalid JSON')",
    )
    add_request_options(parser)


@on_setup
def _load(environment: Any) -> None:
    global PAYLOADS, EXTRACTOR
    options = environment.parsed_options
    EXTRACTOR = extractor_from_options(options)
    PAYLOADS = Payloads.from_options(options)
    check_payload_labels(PAYLOADS)


class JsonPostUser(ModelUser):
    @task
    def post(self) -> None:
        assert PAYLOADS is not None and EXTRACTOR is not None
        body, meta = PAYLOADS.next()
        options = self.environment.parsed_options
        path = options.path
        # Named by the path without its query: one name per route, and no api keys in names.
        name = f"POST {path.split('?', 1)[0]}"
        # No request counts as a success unless it is one: a 200 with a broken body is an error.
        check = not getattr(options, "no_check_json", False)
        if not check and not request_extras(meta) and not EXTRACTOR.explicit:
            self.client.post(path, json=body, headers=self.headers, name=name)
            return
        post_labelled(self, path, body, meta, EXTRACTOR, check=check, name=name)
