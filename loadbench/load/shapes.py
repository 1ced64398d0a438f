"""Load shapes: ramp, step and spike profiles as a list of `Stage`s, and what the driver and
the analyzer need from them.

Consumes a ``--shape`` spec or a ``--stages`` file; produces stages whose *level* is users
(closed loop) or requests/s (open loop, ``--rate``), levels over time and a rate function for
the open-loop scheduler. The Locust shape class is the driver's (`loadbench.drive.shape`), the
per-stage metrics the analyzer's (`loadbench.analyze.stages`). Stage times
are offsets in seconds from the load start; stages follow each other without gaps.

``--shape`` grammar (``DURATION`` as ``--duration``: ``500ms``, ``30s``, ``2m``, ``1h30m``)::

    ramp:FROM-TO:DURATION          linear from FROM to TO over DURATION       ramp:10-100:60s
    ramp:FROM-TO:DURATION:STEPS    STEPS equal steps from FROM to TO (both     ramp:10-100:60s:5
                                   included), each held DURATION/STEPS         (10, 33, 55, 78, 100)
    step:L1,L2,...:DURATION        each level held DURATION                   step:10,20,40:30s
    spike:BASE,PEAK:DURATION:LENGTH[@AT]
                                   BASE for DURATION in all, PEAK for LENGTH   spike:20,200:60s:10s@30s
                                   from AT (default: centred)

A stages file is JSON, a list of ``{"duration": "30s" | 30, "users": N}`` (or ``"rate": R``)
with optional ``"name"`` and ``"ramp_from"`` (the stage ramps linearly from that level), or CSV
with the header ``duration,users`` (or ``duration,rate``) and optional ``name`` and
``ramp_from`` columns. Levels are >= 0 (0 users or 0 req/s is a pause) and not all 0; users
are whole numbers. Every bad input raises `UsageError` with one line saying what is accepted.

Pure: no Locust (importing it would monkey-patch the stdlib), so the analyzer can import it.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadbench.errors import UsageError
from loadbench.values import parse_duration

UNITS = ("users", "rate")
MAX_STEPS = 1000  # a ramp's STEPS: more would be a linear ramp in all but name
SHAPE_GRAMMAR = (
    "ramp:FROM-TO:DURATION[:STEPS], step:L1,L2,...:DURATION or spike:BASE,PEAK:DURATION:LENGTH[@AT] "
    "(e.g. ramp:10-100:60s, ramp:10-100:60s:5, step:10,20,40:30s, spike:20,200:60s:10s@30s)"
)
FILE_FORMAT = (
    'a JSON list like [{"duration": "30s", "users": 10}, {"duration": 60, "users": 50, "ramp_from": 10}] '
    "(or rate instead of users; optional name), or a CSV with the header duration,users "
    "(or duration,rate) and optional name,ramp_from columns"
)
_FILE_KEYS = ("duration", "users", "rate", "name", "ramp_from")


@dataclass(frozen=True)
class Stage:
    """One stage of a load shape: the level goes linearly from ``start_level`` (at ``start_s``)
    to ``end_level`` (just before ``end_s``); equal levels hold steady. Times are offsets in
    seconds from the load start; a level is users (closed loop) or requests/s (open loop)."""

    name: str
    start_s: float
    end_s: float
    start_level: float
    end_level: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        """The stage as recorded in ``meta.json`` ``settings.stages``."""
        return asdict(self)


# --- parsing ------------------------------------------------------------------------------------


def parse_shape(spec: str, *, unit: str) -> list[Stage]:
    """``--shape`` spec -> stages (grammar in the module docstring); unit is "users" or "rate"."""
    _check_unit(unit)

    def fail(problem: str) -> UsageError:
        return UsageError(f"bad --shape {spec!r}: {problem}; use {SHAPE_GRAMMAR}")

    kind, _, rest = spec.strip().partition(":")
    parts = rest.split(":") if rest else []
    kind = kind.strip().lower()

    def level(text: str, what: str) -> float:
        return _parse_level(text, unit, lambda p: fail(f"{what} {p}"))

    def duration(text: str, what: str, *, zero_ok: bool = False) -> float:
        try:
            seconds = parse_duration(text)
        except UsageError:
            raise fail(f"{what} {text.strip()!r} is not a duration like 30s, 2m, 500ms") from None
        if seconds <= 0 and not zero_ok:
            raise fail(f"{what} must be longer than 0 s")
        return seconds

    if kind == "ramp":
        if len(parts) not in (2, 3):
            raise fail("a ramp is ramp:FROM-TO:DURATION or ramp:FROM-TO:DURATION:STEPS")
        low, dash, high = parts[0].partition("-")
        if not dash:
            raise fail(f"the ramp's levels {parts[0]!r} are not FROM-TO like 10-100")
        start, end = level(low, "FROM"), level(high, "TO")
        total = duration(parts[1], "DURATION")
        if len(parts) == 2:
            stages = [Stage("ramp", 0.0, total, start, end)]
        else:
            steps = _count(parts[2], lambda p: fail(f"STEPS {p}"))
            levels = [start + (end - start) * i / (steps - 1) for i in range(steps)]
            stages = _held(levels, [total / steps] * steps, unit, "step")
    elif kind == "step":
        if len(parts) != 2 or not parts[0].strip():
            raise fail("steps are step:L1,L2,...:DURATION")
        levels = [level(text, "level") for text in parts[0].split(",")]
        held = duration(parts[1], "DURATION")
        stages = _held(levels, [held] * len(levels), unit, "step")
    elif kind == "spike":
        if len(parts) != 3 or parts[0].count(",") != 1:
            raise fail("a spike is spike:BASE,PEAK:DURATION:LENGTH or spike:BASE,PEAK:DURATION:LENGTH@AT")
        base_text, peak_text = parts[0].split(",")
        base, peak = level(base_text, "BASE"), level(peak_text, "PEAK")
        total = duration(parts[1], "DURATION")
        length_text, at_sign, at_text = parts[2].partition("@")
        length = duration(length_text, "the spike's LENGTH")
        if length > total:
            raise fail(f"the spike's LENGTH ({length:g} s) must not exceed DURATION ({total:g} s)")
        at = duration(at_text, "the spike's start AT", zero_ok=True) if at_sign else (total - length) / 2
        if at + length > total:
            raise fail(f"the spike ({length:g} s from {at:g} s) must end within DURATION ({total:g} s)")
        stages = [
            Stage(name, start, end, lvl, lvl)
            for name, start, end, lvl in (
                ("before spike", 0.0, at, base),
                ("spike", at, at + length, peak),
                ("after spike", at + length, total, base),
            )
            if end > start
        ]
    else:
        raise fail(f"unknown shape {kind!r}")
    if not any(s.start_level > 0 or s.end_level > 0 for s in stages):
        raise fail("every level is 0, so nothing would be sent")
    return stages


def stages_unit(path: Path) -> str:
    """The unit a stages file's levels are in: "rate" when its stages give a rate, else "users"."""
    given = _given_levels(_stage_rows(path))
    return "rate" if given == {"rate"} else "users"


def _stage_rows(path: Path) -> list[tuple[str, Mapping[str, object]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"stages file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read stages file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not text.strip():
        raise UsageError(f"stages file {path} is empty: give {FILE_FORMAT}")
    # By content, not suffix: a JSON document starts with [ or {, a CSV with its header.
    rows = _json_rows(path, text) if text.lstrip()[0] in "[{" else _csv_rows(path, text)
    if not rows:
        raise UsageError(f"stages file {path} has no stages: give {FILE_FORMAT}")
    return rows


def _given_levels(rows: list[tuple[str, Mapping[str, object]]]) -> set[str]:
    return {key for _, fields in rows for key in ("users", "rate") if fields.get(key) not in (None, "")}


def read_stages(path: Path, *, unit: str) -> list[Stage]:
    """A stages file (JSON or CSV, format in the module docstring) -> stages; unit as the run's mode."""
    _check_unit(unit)
    rows = _stage_rows(path)
    given = _given_levels(rows)
    if given == {"users", "rate"}:
        raise UsageError(f"stages file {path} mixes users and rate: give one of them for every stage")
    if given and given != {unit}:
        mode = "open loop (--rate): give rate" if unit == "rate" else "closed loop: give users"
        raise UsageError(f"stages file {path} gives {given.pop()} but the run is {mode} for every stage")

    stages: list[Stage] = []
    for index, (where, fields) in enumerate(rows, start=1):

        def fail(problem: str, where: str = where) -> UsageError:
            return UsageError(f"stages file {path} {where}: {problem}")

        raw_level = fields.get(unit)
        if raw_level in (None, ""):
            raise fail(f"no {unit}: every stage needs a duration and its {unit}")
        if fields.get("duration") in (None, ""):
            raise fail("no duration: every stage needs one, e.g. 30s, 2m or a number of seconds")
        seconds = _file_duration(fields["duration"], fail)
        end = _file_level(raw_level, unit, lambda p: fail(f"{unit} {p}"))
        ramp = fields.get("ramp_from")
        start = end if ramp in (None, "") else _file_level(ramp, unit, lambda p: fail(f"ramp_from {p}"))
        name = fields.get("name")
        if name is not None and not isinstance(name, str):
            raise fail(f"name {name!r} is not text")
        if not name or not name.strip():
            levels = _fmt(end, unit) if start == end else f"{start:g}-{_fmt(end, unit)}"
            name = f"stage {index}: {levels}"
        offset = stages[-1].end_s if stages else 0.0
        stages.append(Stage(name.strip(), offset, offset + seconds, start, end))
    if not any(s.start_level > 0 or s.end_level > 0 for s in stages):
        raise UsageError(f"stages file {path}: every level is 0, so nothing would be sent")
    return stages


def _json_rows(path: Path, text: str) -> list[tuple[str, Mapping[str, object]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"stages file {path} line {exc.lineno}: bad JSON ({exc.msg}); give {FILE_FORMAT}"
        ) from None
    if not isinstance(data, list):
        raise UsageError(f"stages file {path} is not a JSON list of stages: give {FILE_FORMAT}")
    rows: list[tuple[str, Mapping[str, object]]] = []
    for index, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise UsageError(f"stages file {path} stage {index}: not an object; give {FILE_FORMAT}")
        unknown = sorted(set(item) - set(_FILE_KEYS))
        if unknown:
            raise UsageError(
                f"stages file {path} stage {index}: unknown key {unknown[0]!r} (known: {', '.join(_FILE_KEYS)})"
            )
        rows.append((f"stage {index}", item))
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[str, Mapping[str, object]]]:
    reader = csv.reader(io.StringIO(text), strict=True)  # strict: an unclosed quote is an error
    try:
        header = [column.strip().lower() for column in next(reader)]
        unknown = [c for c in header if c not in _FILE_KEYS]
        if unknown or "duration" not in header or len(set(header)) != len(header):
            problem = f"unknown column {unknown[0]!r}" if unknown else "a bad header"
            raise UsageError(f"stages file {path} line 1: {problem}; give {FILE_FORMAT}")
        rows: list[tuple[str, Mapping[str, object]]] = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            where = f"line {reader.line_num}"
            if len(cells) != len(header):
                raise UsageError(
                    f"stages file {path} {where}: {len(cells)} fields, the header has {len(header)} "
                    f"({','.join(header)})"
                )
            rows.append((where, {k: v.strip() for k, v in zip(header, cells, strict=True)}))
    except csv.Error as exc:
        raise UsageError(f"stages file {path} line {reader.line_num}: bad CSV ({exc})") from None
    return rows


def _file_duration(value: object, fail: Callable[[str], UsageError]) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise UsageError("not text or a number")
        seconds = parse_duration(str(value))
    except UsageError:
        raise fail(
            f"duration {value!r} is not a duration like 30s, 2m, 500ms or a number of seconds"
        ) from None
    if seconds <= 0:
        raise fail("duration must be longer than 0 s")
    return seconds


def _file_level(value: object, unit: str, fail: Callable[[str], UsageError]) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise fail(f"{value!r} is not a number")
    return _parse_level(str(value), unit, fail)


def _parse_level(text: str, unit: str, fail: Callable[[str], UsageError]) -> float:
    """A level: a finite number >= 0; for users a whole number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise fail(f"{text.strip()!r} is not a number >= 0")
    if unit == "users" and value != int(value):
        raise fail(f"{text.strip()!r} is not a whole number of users")
    return value


def _count(text: str, fail: Callable[[str], UsageError]) -> int:
    try:
        steps = int(text)
    except ValueError:
        raise fail(f"{text.strip()!r} is not a whole number") from None
    if not 2 <= steps <= MAX_STEPS:
        raise fail(f"must be 2 to {MAX_STEPS}, not {steps}")
    return steps


def _held(levels: list[float], durations: list[float], unit: str, prefix: str) -> list[Stage]:
    """Consecutive steady stages named ``step 1: 10 users``; users rounded to whole numbers."""
    stages: list[Stage] = []
    offset = 0.0
    for i, (lvl, seconds) in enumerate(zip(levels, durations, strict=True), start=1):
        if unit == "users":
            lvl = float(round_users(lvl))
        stages.append(Stage(f"{prefix} {i}: {_fmt(lvl, unit)}", offset, offset + seconds, lvl, lvl))
        offset += seconds
    return stages


def _fmt(level: float, unit: str) -> str:
    if unit == "rate":
        return f"{level:g} req/s"
    return "1 user" if level == 1 else f"{level:g} users"


def _check_unit(unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, not {unit!r}")


def round_users(level: float) -> int:
    """Half up, so a ramp's halves go the same way (Python's round() would alternate)."""
    return math.floor(level + 0.5)


# --- evaluation ---------------------------------------------------------------------------------


def total_duration_s(stages: Sequence[Stage]) -> float:
    """When the last stage ends (0 for no stages)."""
    return stages[-1].end_s if stages else 0.0


def peak_level(stages: Sequence[Stage]) -> float:
    """The highest level of any stage (0 for no stages)."""
    return max((max(s.start_level, s.end_level) for s in stages), default=0.0)


def level_at(stages: Sequence[Stage], t: float) -> float | None:
    """The level ``t`` seconds after the load start; None at and after the end of the last stage.

    Stages are half-open ``[start_s, end_s)``: at a boundary the next stage's level applies.
    Inside a ramp the level is interpolated linearly. Before 0: the first stage's start level.
    """
    return _interpolate(stages, [s.start_s for s in stages], t)


def rate_function(stages: Sequence[Stage]) -> Callable[[float], float | None]:
    """For the open-loop scheduler: seconds since the load start -> requests/s (0: send nothing
    now), or None once the schedule has ended. Same values as `level_at`."""
    frozen = tuple(stages)
    starts = [s.start_s for s in frozen]  # computed once: the scheduler calls this per send
    return lambda t: _interpolate(frozen, starts, t)


def _interpolate(stages: Sequence[Stage], starts: list[float], t: float) -> float | None:
    if not stages or t >= stages[-1].end_s:
        return None
    stage = stages[max(bisect.bisect_right(starts, t) - 1, 0)]
    if stage.start_level == stage.end_level or stage.duration_s <= 0:
        return stage.start_level
    share = min(max((t - stage.start_s) / stage.duration_s, 0.0), 1.0)
    return stage.start_level + (stage.end_level - stage.start_level) * share


def default_spawn_rate(stages: Sequence[Stage]) -> float:
    """Users started (or stopped) per second so that every change of level completes within
    about a second: the biggest jump between stages (from 0 at the start), or a ramp's slope."""
    changes = [1.0]
    previous = 0
    for stage in stages:
        changes.append(abs(round_users(stage.start_level) - previous))
        if stage.duration_s > 0:
            changes.append(math.ceil(abs(stage.end_level - stage.start_level) / stage.duration_s))
        previous = round_users(stage.end_level)
    return float(max(changes))
