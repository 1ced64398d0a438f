"""The predict API of KServe v1 and TF Serving's REST: POST ``/v1/models/<model>[...]:predict``.

``scenarios/kserve_v1.py`` and ``scenarios/tfserving.py`` speak the same wire format and differ
only in how they find the model's path. Each takes its model options and `add_predict_options`,
subclasses `PredictUser` and, in its ``on_setup``, calls ``set_up`` with its path function.

Each body is a data row: a dict holding ``instances`` (or ``inputs``) is sent as it is; any
other row is one instance (``{"instances": [row]}``). A response is a success when it is JSON
with ``predictions`` (``outputs`` for an ``inputs`` request). A ``--data`` row's ``_expected``
is the label its answer should carry (`loadbench.scenario.labels`).

`say_at_start(environment, line)`: the one line a scenario's set-up says about what its
discovery found (the model, its inputs or settings), once the load starts.

Imports locust: only scenarios and driving code may import this module.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any, ClassVar

from locust import task
from locust.runners import WorkerRunner

from loadbench.protocols.bodies import PREDICT_EXTRACT, predict_answer_keys, predict_body
from loadbench.protocols.extract import Extractor
from loadbench.scenario.helpers import ModelUser, Payloads, add_request_options
from loadbench.scenario.labels import (
    add_extract_option,
    check_payload_labels,
    extractor_from_options,
    post_labelled,
)


def say_at_start(environment: Any, line: str) -> None:
    """Say ``line`` (what the set-up found) once, as ``loadbench: LINE`` on stderr when the load starts.

    Under loadbench's drivers: not under ``--quiet`` (which turns Locust's loggers off before the
    load starts) and not on a distributed worker (its master says it); the line is also kept as
    ``environment.loadbench_discovery``, which the run directory's meta.json records. Under
    plain ``locust``: at once, through the ``loadbench`` logger, which Locust's log set-up shows.
    """
    if isinstance(environment.runner, WorkerRunner):
        return
    # Kept for meta.json's `discovery` (loadbench.drive.lifecycle): said lines are gone with --quiet.
    environment.loadbench_discovery = line
    if not getattr(environment, "loadbench_library_mode", False):
        logging.getLogger("loadbench").info(line)
        return
    said = False

    def say(**_: Any) -> None:
        nonlocal said
        if not said and logging.getLogger("locust").getEffectiveLevel() <= logging.CRITICAL:
            sys.stderr.write(f"loadbench: {line}\n")
        said = True

    environment.events.test_start.add_listener(say)


def add_predict_options(parser: argparse.ArgumentParser, payload_help: str) -> None:
    """``--extract`` (default: the first of ``predictions.0``, ``outputs.0``) and the request options."""
    add_extract_option(parser, PREDICT_EXTRACT)
    add_request_options(parser, payload_help=payload_help)


class PredictUser(ModelUser):
    """Sends the scenario's rows as predict bodies, back to back; set up once by ``set_up``."""

    abstract = True
    # Shared by all users of the class in this process, as the scenario's set-up found them.
    predict_path: ClassVar[str] = ""
    payloads: ClassVar[Payloads | None] = None
    extractor: ClassVar[Extractor | None] = None

    @classmethod
    def set_up(cls, environment: Any, model_path: Callable[[Any], str]) -> None:
        """Read ``--extract``, find the path (``model_path(environment)``), load the bodies.

        In this order, so a bad ``--extract`` fails before any request to the target.
        """
        options = environment.parsed_options
        cls.extractor = extractor_from_options(options, PREDICT_EXTRACT)
        cls.predict_path = model_path(environment)
        rows = Payloads.from_options(options)
        cls.payloads = rows.with_bodies([predict_body(row) | extras for row, extras in rows.items])
        check_payload_labels(cls.payloads)

    @task
    def predict(self) -> None:
        assert self.payloads is not None and self.extractor is not None
        body, meta = self.payloads.next()
        post_labelled(
            self, self.predict_path, body, meta, self.extractor, answer_key=predict_answer_keys(body)
        )
