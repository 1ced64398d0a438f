"""In-process targets for scenarios: a Locust user that calls a model inside this process
(`loadbench.protocols.inprocess`: ``python://`` callables, ``onnx://`` sessions) and reports every
call to Locust's ``request`` event with the fields the HTTP clients report, so ``requests.csv``,
the metrics, quality and the reports read as they do for a served model (docs/run-format.md):

- ``request_type`` ``CALL`` (a Python callable) or ``ONNX``; ``name`` the callable
  (``package.module:callable``) or the model file's name;
- ``response_time``: ``time.perf_counter()`` ms around the model's call alone, taken in the thread
  that makes it (handing the call to that thread and back is not in it); ``start_time`` the wall
  clock at the call; ``response_length`` 0 (nothing crosses a wire);
- ``response``: status 200 for an answer; a call that raised is a failure with status 0 (no answer)
  and that exception (the error column reads ``ValueError: ...``);
- ``context``: the user's ``context()`` (the open loop's due time) and ``context["loadbench"]``: the
  row's label and the prediction (`loadbench.protocols.inprocess.prediction_text`).

Gevent: a call runs in gevent's thread pool (``gevent.get_hub().threadpool``), which grows to the
most users running at once, so a user waiting on its call never holds the loop the other users, the
recorder and the sampler run on; a model that releases the GIL (numpy, ONNX Runtime, a sleep) then
runs as many calls at once as there are users. A call longer than ``--timeout`` cannot be cut off
(a thread cannot be): it is recorded, as a timeout, when it returns.

Imports locust and gevent: only scenarios and driving code may import this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import gevent
from locust import User, constant

from loadbench.protocols.extract import Extractor
from loadbench.protocols.inprocess import InProcessTarget, prediction_text
from loadbench.record.records import EXTRAS_KEY
from loadbench.scenario.helpers import Extras
from loadbench.scenario.labels import request_extras


@dataclass(frozen=True)
class CallReply:
    """The request event's ``response`` of an in-process call: the status, and no HTTP headers."""

    status_code: int
    headers: None = None


ANSWERED = CallReply(200)
RAISED = CallReply(0)


def timed_call(function: Any, argument: Any) -> tuple[float, float, Any, BaseException | None]:
    """Call ``function(argument)`` (in a pool thread): (wall clock at the call, ms, result, exception)."""
    start_unix = time.time()
    start = time.perf_counter()
    try:
        result = function(argument)
    except Exception as exc:  # the user's model: any exception is its failure, recorded
        return start_unix, (time.perf_counter() - start) * 1000.0, None, exc
    return start_unix, (time.perf_counter() - start) * 1000.0, result, None


class InProcessUser(User):
    """Base user for in-process targets; the scenario sets `target` at set-up (`call_labelled`)."""

    abstract = True
    wait_time = constant(0)
    # The user asks for ``context()`` before each call, so calls cut off by the stop are counted
    # (`loadbench.drive.inflight.counts_starts`).
    context_before_send: ClassVar[bool] = True
    running: ClassVar[int] = 0  # users running in this process: the thread pool grows to their peak

    def on_start(self) -> None:
        InProcessUser.running += 1
        pool = gevent.get_hub().threadpool
        if pool.maxsize < InProcessUser.running:
            pool.maxsize = InProcessUser.running

    def on_stop(self) -> None:
        InProcessUser.running -= 1

    def call_labelled(
        self, target: InProcessTarget, argument: Any, meta: Extras, extractor: Extractor | None
    ) -> None:
        """Call the model with a prepared row in a pool thread; fire its request event with the
        row's label and the prediction."""
        extras = request_extras(meta)
        context = {**self.context(), EXTRAS_KEY: dict(extras)}
        start_unix, elapsed_ms, result, exception = gevent.get_hub().threadpool.apply(
            timed_call, (target.call, argument)
        )
        response = ANSWERED if exception is None else RAISED
        if exception is None and ("expected" in extras or (extractor is not None and extractor.explicit)):
            try:
                context[EXTRAS_KEY]["predicted"] = prediction_text(target, result, extractor)
            except Exception as exc:  # an answer with no readable label: a failed answer, said
                exception = exc
        self.environment.events.request.fire(
            request_type=target.method,
            name=target.name,
            response_time=elapsed_ms,
            response_length=0,
            exception=exception,
            start_time=start_unix,
            response=response,
            context=context,
            url=None,
        )
