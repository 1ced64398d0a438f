"""Call a model inside loadbench's own process: no server, no network (an in-process target).

    loadbench run --target python://package.module:callable (--data FILE.jsonl | --payload JSON)
    loadbench run --target onnx://PATH/model.onnx (--data FILE.jsonl | --payload JSON)
    locust -f scenarios/inprocess.py --host python://package.module:callable [same options]

Chosen for a ``python://`` or ``onnx://`` target (no probe, no preflight request, no round-trip
measurement: there is no network). ``python://`` imports the module (the current directory first
on the import path) and calls the function with each ``--data`` line as a dict, without its
``_`` keys: ``def predict(row): return int(model.predict([row["inputs"][0]])[0])``. ``onnx://``
opens an ONNX Runtime session on the file (``pip install onnxruntime``) and feeds it each row:
by input name, or, for a model of one input, the row's numbers (`loadbench.protocols.inprocess`).
Every row is made ready once at set-up, and the first one is called once there: a callable that
raises on it, or a row that does not fit the model's inputs, stops the start with one line.

Records, metrics, quality and reports are those of a served model: method ``CALL`` or ``ONNX``,
the name of the callable or model file, status 200 per answer, a raised exception a failure with
its ``Type: message``; latency is the model's call alone (`loadbench.scenario.inprocess`). The
same rows served (``kserve_v2``, ``json_post``) and called here give the serving overhead with
``loadbench compare SERVED_RUN IN_PROCESS_RUN`` (served p50 - in-process p50).

Quality: a line's ``_expected`` is the label the answer should carry; the prediction is the
answer itself (a list or array: its first element; a dict: the first of ``prediction``,
``predictions.0``, ...; an ONNX answer: the first output's first element, or the index of the
largest score), or the answer at ``--extract PATH`` (an ONNX answer as ``{output name: values}``).
"""

from __future__ import annotations

from typing import Any

from locust import events, task

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.errors import UsageError
from loadbench.protocols.extract import DEFAULT_PATHS, Extractor
from loadbench.protocols.inprocess import InProcessTarget, open_target
from loadbench.scenario import Payloads, add_request_options, on_setup
from loadbench.scenario.inprocess import InProcessUser, timed_call
from loadbench.scenario.labels import add_extract_option, check_payload_labels, extractor_from_options
from loadbench.scenario.predict import say_at_start
from loadbench.values import check_target, is_inprocess_url

TARGET: InProcessTarget | None = None
REQUESTS: list[tuple[Any, dict[str, Any]]] = []
EXTRACTOR: Extractor | None = None
_NEXT = [0]  # the next request's index, shared by the users (round-robin, as Payloads hands out)


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    add_extract_option(parser, DEFAULT_PATHS)
    add_request_options(parser, payload_help="Passed to the callable as a dict (its _ keys removed).")


@on_setup
def _load(environment: Any) -> None:
    global TARGET, REQUESTS, EXTRACTOR
    options = environment.parsed_options
    host = environment.host or ""
    if not is_inprocess_url(host):
        raise UsageError(
            f"scenario inprocess calls a model in this process: give --target python://package.module:callable "
            f"or onnx://PATH/model.onnx, not {host!r}"
        )
    if not options.payload and not options.data:
        raise UsageError(
            "an in-process target needs rows to call it with: give --data FILE.jsonl or --payload JSON"
        )
    EXTRACTOR = extractor_from_options(options, DEFAULT_PATHS)
    TARGET = open_target(check_target(host))
    payloads = Payloads.from_options(options)
    check_payload_labels(payloads)
    REQUESTS = []
    for number, (body, meta) in enumerate(payloads.items, start=1):
        try:
            REQUESTS.append((TARGET.prepare(body), meta))
        except UsageError as exc:
            raise UsageError(f"row {number}: {exc}") from None
    _, _, _, raised = timed_call(TARGET.call, REQUESTS[0][0])  # the preflight: the first row, once
    if raised is not None:
        said = " ".join(str(raised).split())[:300]
        raise UsageError(f"{TARGET.name} failed on row 1: {type(raised).__name__}: {said}")
    say_at_start(environment, f"inprocess: {TARGET.described}; {len(REQUESTS)} row(s)")


class InProcessCallUser(InProcessUser):
    @task
    def call(self) -> None:
        assert TARGET is not None
        index = _NEXT[0] % len(REQUESTS)
        _NEXT[0] = index + 1
        argument, meta = REQUESTS[index]
        self.call_labelled(TARGET, argument, meta, EXTRACTOR)
