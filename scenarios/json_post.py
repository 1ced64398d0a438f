"""POST a JSON body to a model endpoint: any custom JSON API, or the demo's ``/predict``.

    loadbench run --target URL --scenario json_post [--path /predict] (--payload JSON | --data FILE.jsonl)
    locust -f scenarios/json_post.py --host URL [same options]

A response counts as a success when its status is below 400. ``--data`` sends each line of a
JSON Lines file in turn (``loadbench/data/digits.jsonl`` fits the demo endpoint).
"""

from __future__ import annotations

from typing import Any

from locust import events, task

from loadbench.scenario import ModelUser, Payloads, add_request_options, on_setup

PAYLOADS: Payloads | None = None


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--path", default="/predict", help="URL path to POST to (default /predict)")
    add_request_options(parser)


@on_setup
def _load(environment: Any) -> None:
    global PAYLOADS
    PAYLOADS = Payloads.from_options(environment.parsed_options)


class JsonPostUser(ModelUser):
    @task
    def post(self) -> None:
        assert PAYLOADS is not None
        body, _ = PAYLOADS.next()
        path = self.environment.parsed_options.path
        # Named by the path without its query: one name per route, and no api keys in names.
        self.client.post(path, json=body, headers=self.headers, name=f"POST {path.split('?', 1)[0]}")
