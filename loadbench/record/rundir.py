"""The run directory: its file names, creation rules, and ``meta.json`` / ``summary.json`` I/O.

Every stage reads and writes a run directory (format: ``docs/run-format.md``); this module
owns where things are and how JSON is written (atomically: a reader never sees half a file).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadbench.errors import RunDirError

FORMAT_VERSION = 2  # 2: the records may be in requests.parquet (`--records parquet`)
# A run recorded in requests.csv is written as format 1: every version of loadbench reads it.
CSV_FORMAT_VERSION = 1
# Longest run `read_meta` accepts (started_unix_s to ended_unix_s): the analyzer writes one
# timeseries row per second, so a damaged timestamp must not ask for billions of rows.
MAX_RUN_S = 31 * 86400

META = "meta.json"  # settings, versions, host, start/end, status; written by the driver
REQUESTS = "requests.csv"  # one line per request; written by the recorder
REQUESTS_PARQUET = "requests.parquet"  # the same records, columnar, once a --records parquet run ended
USERS = "users.csv"  # active users once a second; written by the recorder
SAMPLES = "samples.jsonl"  # resource samples; written by the sampler
SAMPLER_INFO = "sampler.json"  # what the sampler samples and how it found it; written by the sampler
SUMMARY = "summary.json"  # metrics; written by the analyzer
TIMESERIES = "timeseries.csv"  # per-second metrics; written by the analyzer
REPORT = "report.html"  # written by the report stage
SUMMARY_MD = "summary.md"  # written by the report stage

# meta.json "status": how the load phase ended.
STATUS_RUNNING = "running"  # still running, or the driver was killed (SIGKILL, power loss)
STATUS_COMPLETE = "complete"  # ran for its full duration
STATUS_INTERRUPTED = "interrupted"  # stopped early by Ctrl-C / SIGTERM; what ran is measured
STATUS_FAILED = "failed"  # the driver stopped on an error after the load began


def utc_stamp(unix_s: float) -> str:
    """A compact UTC timestamp for directory names: ``20261123T162200Z``."""
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y%m%dT%H%M%SZ")


def iso_utc(unix_s: float) -> str:
    """ISO 8601 UTC with milliseconds, for humans and JSON."""
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_run_dir(reports_dir: Path, scenario: str, unix_s: float) -> Path:
    """``reports/<UTC timestamp>-<scenario>``, made unique with a suffix if taken."""
    base = reports_dir / f"{utc_stamp(unix_s)}-{scenario}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def check_new_run_dir(path: Path, force: bool = False) -> None:
    """What `create_run_dir` would refuse, found without creating anything (a `RunDirError`):
    a file there, a non-empty directory without ``force``, or nowhere to create it (the nearest
    existing folder on its path is a file, or not writable). For checks before the load
    (`loadbench.drive.runner`: before the preflight request)."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise RunDirError(f"run directory {path} already exists and is not empty (use --force to reuse it)")
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(f"cannot write run directory {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"cannot write run directory {path}: {existing} is not writable")


def create_run_dir(path: Path, force: bool = False) -> Path:
    """Create an empty run directory; refuse a non-empty one unless ``force`` (`check_new_run_dir`)."""
    check_new_run_dir(path, force)
    if path.is_dir() and any(path.iterdir()):
        for name in (
            META,
            REQUESTS,
            REQUESTS_PARQUET,
            USERS,
            SAMPLES,
            SAMPLER_INFO,
            SUMMARY,
            TIMESERIES,
            REPORT,
            SUMMARY_MD,
        ):
            (path / name).unlink(missing_ok=True)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"cannot write run directory {path}: {exc.strerror or exc}") from None
    return path


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename) so a crash never leaves half a file; a write
    the system refuses (a full disk) is a one-line `RunDirError`, the old file left as it was."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise RunDirError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes files private; run files are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RunDirError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, turning every failure into a one-line `RunDirError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except ValueError as exc:  # an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise RunDirError(f"{path} is not usable JSON: {exc}") from None
    except RecursionError:  # arrays / objects nested thousands deep
        raise RunDirError(f"{path} is not usable JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path} does not hold a JSON object")
    return data


def check_run_dir(path: Path) -> Path:
    """Raise a one-line `RunDirError` unless ``path`` looks like a run directory."""
    if not path.is_dir():
        raise RunDirError(f"run directory {path} does not exist")
    if not (path / META).is_file():
        raise RunDirError(f"{path} is not a loadbench run directory: {META} is missing")
    return path


def read_meta(run_dir: Path) -> dict[str, Any]:
    """Read and minimally check ``meta.json``: the fields and types the analyzer relies on."""
    meta = read_json(check_run_dir(run_dir) / META)
    for key in ("format", "started_unix_s", "settings"):
        if key not in meta:
            raise RunDirError(f"{run_dir / META} has no {key!r} field")
    if not isinstance(meta["format"], int) or isinstance(meta["format"], bool):
        raise RunDirError(f"{run_dir / META} has a 'format' that is not an integer: {meta['format']!r}")
    if meta["format"] > FORMAT_VERSION:
        raise RunDirError(
            f"{run_dir} was written in run format {meta['format']}; this loadbench reads up to {FORMAT_VERSION}"
        )
    # The analyzer relies on these types; a damaged or hand-edited file fails here, in one line,
    # instead of as an AttributeError / OverflowError deep inside it.
    if not isinstance(meta["settings"], dict):
        raise RunDirError(f"{run_dir / META} has an unusable value: 'settings' is not a JSON object")
    if meta.get("sampler") is not None and not isinstance(meta["sampler"], dict):
        raise RunDirError(f"{run_dir / META} has an unusable value: 'sampler' is not a JSON object")
    started = _wall_clock(run_dir, meta, "started_unix_s")
    if meta.get("ended_unix_s") is not None:
        ended = _wall_clock(run_dir, meta, "ended_unix_s")
        if ended - started > MAX_RUN_S:
            raise RunDirError(
                f"{run_dir / META} has an unusable value: the run lasted {ended - started:.6g} s "
                f"by its 'started_unix_s' and 'ended_unix_s', more than the {MAX_RUN_S // 86400} days "
                "loadbench analyzes"
            )
    return meta


def _wall_clock(run_dir: Path, meta: dict[str, Any], key: str) -> float:
    """``meta[key]`` as a wall-clock time that `iso_utc` can show; `RunDirError` otherwise."""
    value = meta[key]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RunDirError(f"{run_dir / META} has an unusable value: {key!r} is not a number: {value!r:.40}")
    try:
        iso_utc(value)  # NaN: ValueError; infinite, or beyond datetime's years 1..9999: the others
    except (OverflowError, OSError, ValueError):
        raise RunDirError(
            f"{run_dir / META} has an unusable value: {key!r} is no wall-clock time: {value!r:.40}"
        ) from None
    return float(value)
