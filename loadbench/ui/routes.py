"""loadbench's routes and tab in Locust's web UI, through Locust's own extension points.

The modern UI's extra tab (``template_args`` ``extended_tabs`` / ``extended_tables``, its rows
added to Locust's own ``/stats/requests`` poll as ``extended_stats``, as in Locust's
``examples/extend_web_ui.py``), and routes on the UI's Flask app: ``/loadbench/`` (the live
page), ``/loadbench/api/status`` (its JSON), ``/loadbench/runs/<run id>/report.html`` and the
script appended to the UI's page. What they show comes from `loadbench.ui.plugin.WebUIPlugin`.
Imports flask (Locust's web UI): driving code only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from flask import Response, abort, jsonify, request, send_file

ASSETS = Path(__file__).resolve().parent / "assets"
TAB_KEY = "loadbench"
# The report is self-contained and script-free; the browser must not fetch anything for it.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class Views(Protocol):
    """What the routes serve (`loadbench.ui.plugin.WebUIPlugin`)."""

    def status(self) -> dict[str, Any]: ...

    def tab_rows(self) -> list[dict[str, str]]: ...

    def report_path(self, run_id: str) -> Path | None: ...


def install_routes(views: Views, web_ui: Any) -> None:
    """Add loadbench's tab to Locust's web UI and its routes to the UI's Flask app."""
    app = web_ui.app
    web_ui.template_args["extended_tabs"] = [{"title": "loadbench", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {
            "key": TAB_KEY,
            "structure": [
                {"key": "metric", "title": "metric"},
                {"key": "loadbench", "title": "loadbench (exact)"},
                {"key": "locust", "title": "Locust (rounded)"},
            ],
        }
    ]
    web_ui.template_args["extended_csv_files"] = [
        {
            "href": "/loadbench/",
            "title": "loadbench: live resources, exact percentiles, reports of this session",
        }
    ]
    panel_js = (ASSETS / "panel.js").read_text(encoding="utf-8")
    page_html = (ASSETS / "page.html").read_text(encoding="utf-8")

    @app.after_request
    def _extend(response: Response) -> Response:
        # Locust's own poll carries the tab's rows; the UI's page gets the corner panel.
        if request.endpoint == "locust.request_stats" and response.is_json:
            data = response.get_json()
            data["extended_stats"] = [{"key": TAB_KEY, "data": views.tab_rows()}]
            response.set_data(json.dumps(data))
        elif (
            request.endpoint == "locust.index"
            and response.mimetype == "text/html"
            and response.status_code == 200
        ):
            body = response.get_data()
            tag = b'<script src="/loadbench/panel.js"></script>'
            if b"</body>" in body:
                response.set_data(body.replace(b"</body>", tag + b"</body>", 1))
        return response

    @app.route("/loadbench/")
    def _page() -> Response:
        return Response(page_html, mimetype="text/html")

    @app.route("/loadbench/panel.js")
    def _panel() -> Response:
        return Response(panel_js, mimetype="application/javascript")

    @app.route("/loadbench/api/status")
    def _status() -> Response:
        response = jsonify(views.status())
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.route("/loadbench/runs/<run_id>/report.html")
    def _report(run_id: str) -> Response:
        path = views.report_path(run_id)
        if path is None:
            abort(404)
        response = send_file(path, mimetype="text/html", max_age=0)
        response.headers["Content-Security-Policy"] = REPORT_CSP
        return response
