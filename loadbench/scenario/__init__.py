"""The locustfile API: what a scenario (``scenarios/*.py`` or your own locustfile) imports to drive
a model endpoint. `loadbench.scenario.helpers` has the pieces every scenario uses (re-exported
here), `loadbench.scenario.llm` OpenAI-compatible streaming (its `LLMUser` re-exported),
`loadbench.scenario.predict` the KServe v1 / TF Serving predict user (re-exported),
`loadbench.scenario.labels` quality labels, `loadbench.scenario.http2` the ``--http2`` client,
`loadbench.scenario.session` the session every user sends through (deadline, redirects, ``--max-body``),
`loadbench.scenario.grpcuser` the gRPC user (`GrpcUser`; not re-exported: it loads grpcio).

loadbench's tab in plain ``locust -f``'s web UI is `loadbench.ui.hook`'s: import it too.
Imports locust: only the driver and scenarios import this package.
"""

from loadbench.record.records import EXTRAS_KEY
from loadbench.scenario.helpers import (
    DEFAULT_TIMEOUT_S,
    Body,
    Extras,
    ModelUser,
    Payloads,
    add_extras,
    add_request_options,
    check_json,
    headers_from_options,
    on_setup,
    read_jsonl,
    tls_verify,
)
from loadbench.scenario.llm import LLMUser, add_llm_user_options
from loadbench.scenario.predict import PredictUser, add_predict_options
from loadbench.scenario.session import DeadlineSession, discarded_body, read_whole_body

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "EXTRAS_KEY",
    "Body",
    "DeadlineSession",
    "Extras",
    "LLMUser",
    "ModelUser",
    "Payloads",
    "PredictUser",
    "add_extras",
    "add_llm_user_options",
    "add_predict_options",
    "add_request_options",
    "check_json",
    "discarded_body",
    "headers_from_options",
    "on_setup",
    "read_jsonl",
    "read_whole_body",
    "tls_verify",
]
