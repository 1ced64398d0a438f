"""Quality in scenarios: the ``--extract`` option, each payload's labels checked once, and the
prediction recorded beside the label.

What a labelled scenario does (``json_post``, ``kserve_v2``, ``tfserving``, ``kserve_v1``,
``torchserve``; definitions in docs/metrics.md, "Quality"):

1. `add_extract_option(parser, defaults)` among its options;
2. at set-up, `Extractor` from the option (`extractor_from_options`) and `check_payload_labels`
   on its `loadbench.scenario.helpers.Payloads` (a bad ``_media_s`` is a one-line `UsageError` before
   the load, not an error per request);
3. per request, `post_labelled`: ``extras = request_extras(meta)`` sent as
   ``context={EXTRAS_KEY: extras}`` with ``catch_response=True`` — the label rides in the
   context from the start, so a request that fails (timeout, reset) is still recorded with it
   and counts as a wrong answer — then `record_prediction` once the answer is checked.

Imports locust (through `loadbench.scenario.helpers`): scenarios and driving code only.
"""

from __future__ import annotations

import argparse
from typing import Any

from loadbench.errors import UsageError
from loadbench.protocols.extract import DEFAULT_PATHS, Extractor, payload_extras, response_prediction
from loadbench.record.records import EXTRAS_KEY
from loadbench.scenario.helpers import PAYLOAD_KEY_META, Body, Extras, Payloads, add_extras, check_json


def add_extract_option(parser: argparse.ArgumentParser, defaults: tuple[str, ...] = DEFAULT_PATHS) -> None:
    """``--extract PATH``: where the prediction is in the JSON response (default: ``defaults``)."""
    default_text = defaults[0] if len(defaults) == 1 else "the first of " + ", ".join(defaults)
    parser.add_argument(
        "--extract",
        default=None,
        metavar="PATH",
        help="where the prediction is in the JSON response, for quality against each --data row's "
        f"_expected: dotted keys and list indexes, e.g. predictions.0.label (default: {default_text})",
    )


def extractor_from_options(options: Any, defaults: tuple[str, ...] = DEFAULT_PATHS) -> Extractor:
    """The `Extractor` of ``--extract`` (a bad path is a one-line `UsageError`), else of ``defaults``."""
    return Extractor(getattr(options, "extract", None), defaults=defaults)


def check_payload_labels(payloads: Payloads) -> None:
    """Check every payload's metadata once, before the load; a bad one names its payload."""
    for number, (_, meta) in enumerate(payloads.items, start=1):
        try:
            payload_extras(meta)
        except UsageError as exc:
            raise UsageError(f"payload {number}: {exc}") from None


def request_extras(meta: Extras) -> Extras:
    """The record fields a payload's metadata gives (``expected``, ``media_s``, and ``payload_key``
    when `Payloads` keyed it); {} without any."""
    if not meta:
        return {}
    extras = payload_extras(meta)
    key = meta.get(PAYLOAD_KEY_META)
    if key:
        extras["payload_key"] = key
    return extras


def record_prediction(response: Any, extras: Extras, extractor: Extractor, parsed: Any = None) -> None:
    """Add the prediction to a ``catch_response=True`` request's record, when it carries a label
    or ``--extract`` was given: from ``parsed`` (the JSON body the scenario already checked),
    else from the response body (nothing when the request failed or the body is not JSON)."""
    if "expected" not in extras and not extractor.explicit:
        return
    predicted = extractor(parsed) if parsed is not None else response_prediction(response, extractor)
    if predicted:
        add_extras(response, predicted=predicted)


def post_labelled(
    user: Any,
    path: str,
    body: Body,
    meta: Extras,
    extractor: Extractor,
    *,
    answer_key: str | tuple[str, ...] | None = None,
    check: bool = True,
    name: str | None = None,
) -> None:
    """POST ``body`` as JSON with its payload's labels in the request's context, check the
    answer (JSON, holding ``answer_key``, or one of them, when given; ``check`` False: any answer below HTTP 400)
    and record the prediction."""
    extras = request_extras(meta)
    with user.client.post(
        path,
        json=body,
        headers=user.headers,
        name=name or path,
        context={EXTRAS_KEY: extras},
        catch_response=True,
    ) as response:
        parsed = check_json(response, answer_key) if check else None
        if check and parsed is None:
            return  # failed: not JSON, or already (HTTP error, timeout), with its reason
        record_prediction(response, extras, extractor, parsed)
