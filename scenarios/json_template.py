"""Generic JSON: each body is a template filled from one row of a JSON Lines file, POSTed to ``--path``.

    loadbench run --target URL --scenario json_template --data ROWS.jsonl \\
        --template '{"inputs": "{{text}}"}' [--path /predict] [--extract predictions.0]
    locust -f scenarios/json_template.py --host URL [same options]

``--template JSON`` (or ``--template-file FILE``) is a JSON request with ``{{field}}``
placeholders inside its strings; each row of ``--data`` fills them (rules and escaping:
`loadbench.protocols.bodies`): ``"{{field}}"`` alone takes the row's value with its JSON type, a
placeholder inside longer text takes the value's text, and the filled body is JSON-encoded,
so quotes and backslashes in values are escaped. A row's ``_expected`` is kept as the label.

A response is a success when its status is below 400 (and, with ``--extract PATH``, when it is
JSON); ``--extract`` (a dotted path such as ``predictions.0`` or ``outputs.0.data.0``) picks the
prediction, written to the ``predicted`` column beside ``expected``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from locust import events, task

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.errors import ScenarioError, UsageError
from loadbench.protocols.bodies import Template
from loadbench.protocols.extract import Extractor, label_text
from loadbench.scenario import ModelUser, Payloads, add_extras, add_request_options, on_setup
from loadbench.scenario.helpers import payload_context

PAYLOADS: Payloads | None = None
EXTRACTOR: Extractor | None = None


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    # Not in the web UI's start form: a query string may carry an api key (shown there in clear).
    parser.add_argument(
        "--path", default="/predict", help="URL path to POST to (default /predict)", include_in_web_ui=False
    )
    parser.add_argument("--template", default=None, metavar="JSON", help="request template with {{field}}s")
    parser.add_argument("--template-file", default=None, metavar="FILE", help="the template, from a file")
    parser.add_argument(
        "--extract", default=None, metavar="PATH", help="JSON path to the prediction (e.g. predictions.0)"
    )
    add_request_options(parser, payload_help="Rows to fill the template with come from --data instead.")


def read_template(options: Any) -> Template:
    """The ``--template`` or ``--template-file`` (exactly one)."""
    if bool(options.template) == bool(options.template_file):
        raise UsageError("json_template needs --template JSON or --template-file FILE (one of them)")
    if options.template:
        return Template(options.template)
    try:
        text = Path(options.template_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(
            f"cannot read --template-file {options.template_file}: {exc.strerror or exc}"
        ) from None
    return Template(text, source=f"--template-file {options.template_file}")


@on_setup
def _load(environment: Any) -> None:
    global PAYLOADS, EXTRACTOR
    options = environment.parsed_options
    template = read_template(options)
    if not options.data and not options.payload:
        raise UsageError("json_template needs --data ROWS.jsonl (or one row as --payload JSON)")
    rows = Payloads.from_options(options)
    bodies = []
    for number, (row, extras) in enumerate(rows.items, start=1):
        try:
            filled = template.fill(row)
        except ScenarioError as exc:
            raise ScenarioError(f"{exc} (row {number})") from None
        bodies.append(filled | extras if isinstance(filled, dict) else filled)
    PAYLOADS = rows.with_bodies(bodies)
    EXTRACTOR = Extractor(options.extract) if options.extract else None


class JsonTemplateUser(ModelUser):
    @task
    def post(self) -> None:
        assert PAYLOADS is not None
        body, meta = PAYLOADS.next()
        path = self.environment.parsed_options.path
        name = f"POST {path.split('?', 1)[0]}"
        with self.client.post(
            path,
            json=body,
            headers=self.headers,
            name=name,
            catch_response=True,
            context=payload_context(meta),
        ) as response:
            if EXTRACTOR is None and "_expected" not in meta:
                return
            fields: dict[str, Any] = {}
            if "_expected" in meta:
                fields["expected"] = label_text(meta["_expected"])
            if EXTRACTOR is not None and 0 < (response.status_code or 0) < 400:
                try:
                    fields["predicted"] = EXTRACTOR(response.json())
                except (ValueError, TypeError):
                    response.failure("invalid response: body is not JSON (--extract needs JSON)")
            add_extras(response, **fields)
