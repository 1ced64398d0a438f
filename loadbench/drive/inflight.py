"""Requests in flight at the stop: started by a user, never reported by Locust's request event.

Locust's request event fires when a request ends. When the load stops, Locust kills its users:
at once in a closed loop, after the drain in an open loop (`loadbench.drive.runner`); a request
a user was waiting on then never ends, fires no event and is missing from ``requests.csv``.
On a slow server these are many, and the slowest requests of the run. To say how many, the
users' classes are subclassed (as the open loop's are, `loadbench.drive.openloop`): their
``context()``, a documented Locust extension point that Locust's fast client (and loadbench's
``--http2`` client) asks for just before it sends, counts a start and marks the request's
context; a request event with that mark counts an end. What is left at the stop was cut off.

loadbench's gRPC user (`loadbench.scenario.grpcuser`) asks for it before each call too, and says
so with the class attribute ``context_before_send = True`` (checked by name: grpcio is a large
import that this module does without). Locust's requests-based ``HttpUser`` (and a custom
client) asks for the context after the answer, or not at all: there the count cannot be known
(`counts_starts` is False), and no `InFlight` is kept.

Imports Locust: driving code only.
"""

from __future__ import annotations

from typing import Any

from locust import User
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

STARTED_KEY = "loadbench_started"  # in a request's context: its start was counted


class InFlight:
    """Requests started and not ended, of users from `counted_classes`."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def register(self, environment: Environment) -> InFlight:
        environment.events.request.add_listener(self.on_request)
        return self

    def on_request(self, context: dict[str, Any] | None = None, **_: Any) -> None:
        if context and context.get(STARTED_KEY):
            self.ended += 1

    def reset(self) -> None:
        """A new run starts (the web UI's next start): the last one's cut-off requests never end."""
        self.started = self.ended = 0

    def unrecorded(self) -> int:
        """After the users were stopped: requests they started that were never recorded."""
        return max(self.started - self.ended, 0)


def counts_starts(user_classes: list[type[User]]) -> bool:
    """Whether every class's client asks for the user's context before it sends."""
    return bool(user_classes) and all(
        issubclass(cls, FastHttpUser) or getattr(cls, "context_before_send", False) is True
        for cls in user_classes
    )


def counted_classes(user_classes: list[type[User]], counter: InFlight) -> list[type[User]]:
    """Subclasses of ``user_classes`` whose requests' starts ``counter`` counts."""
    return [_counted_class(cls, counter) for cls in user_classes]


def _counted_class(cls: type[User], counter: InFlight) -> type[User]:
    def context(self: Any) -> dict[str, Any]:
        ctx = cls.context(self)
        counter.started += 1
        return {**ctx, STARTED_KEY: True}

    return type(
        cls.__name__,
        (cls,),
        {"context": context, "__module__": cls.__module__, "__doc__": cls.__doc__},
    )
