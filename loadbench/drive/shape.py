"""The Locust shape class of a closed-loop run with stages (``--shape`` or a stages file of users)."""

from __future__ import annotations

from collections.abc import Sequence

from locust import LoadTestShape

from loadbench.load.shapes import Stage, default_spawn_rate, level_at, round_users


def users_shape_class(stages: Sequence[Stage], spawn_rate: float | None = None) -> type:
    """A `locust.LoadTestShape` subclass following ``stages`` (levels in users).

    ``tick()`` gives ``(users, spawn_rate)``: the level at the shape's run time rounded half
    up, so 0 users is a valid level (a pause, or the foot of a ramp from 0); None after the
    last stage, and Locust stops the load. Locust calls ``tick()`` about once a second, so a
    ramp moves in one-second steps. ``spawn_rate`` defaults to `default_spawn_rate`.
    """
    frozen = tuple(stages)
    rate = float(spawn_rate) if spawn_rate is not None else default_spawn_rate(frozen)

    class StagesShape(LoadTestShape):
        stages = frozen
        spawn_rate = rate

        def tick(self) -> tuple[int, float] | None:
            level = level_at(self.stages, self.get_run_time())
            if level is None:
                return None
            return round_users(level), self.spawn_rate

    return StagesShape
