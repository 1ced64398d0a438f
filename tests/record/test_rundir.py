"""Tests of loadbench.record.rundir: creating run directories and reading/writing their JSON files."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadbench.errors import RunDirError
from loadbench.record import rundir

KNOWN_FILES = (
    rundir.META,
    rundir.REQUESTS,
    rundir.USERS,
    rundir.SUMMARY,
    rundir.TIMESERIES,
    rundir.REPORT,
    rundir.SUMMARY_MD,
)


def test_create_run_dir_makes_a_new_directory_with_parents(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "deep" / "run-1"
    assert rundir.create_run_dir(path) == path
    assert path.is_dir()
    assert list(path.iterdir()) == []  # the write test leaves nothing behind


def test_create_run_dir_accepts_an_existing_empty_directory(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir()
    assert rundir.create_run_dir(path) == path


def test_create_run_dir_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir()
    (path / rundir.META).write_text("{}")
    with pytest.raises(RunDirError, match="already exists and is not empty") as info:
        rundir.create_run_dir(path)
    assert "--force" in str(info.value)
    assert str(path) in str(info.value)
    assert (path / rundir.META).read_text() == "{}"  # untouched


def test_create_run_dir_force_clears_only_known_files(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir()
    for name in KNOWN_FILES:
        (path / name).write_text("old")
    (path / "notes.txt").write_text("mine")
    assert rundir.create_run_dir(path, force=True) == path
    assert sorted(p.name for p in path.iterdir()) == ["notes.txt"]
    assert (path / "notes.txt").read_text() == "mine"


def test_create_run_dir_refuses_a_file(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.write_text("x")
    with pytest.raises(RunDirError, match="is not a directory"):
        rundir.create_run_dir(path, force=True)
    assert path.read_text() == "x"


def test_create_run_dir_under_a_regular_file_is_an_error(tmp_path: Path) -> None:
    # Fails for root too: a path component is a file, not a directory.
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "run"
    with pytest.raises(RunDirError, match="cannot write run directory") as info:
        rundir.create_run_dir(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_check_new_run_dir_refuses_what_create_would_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("x")
    for path, said in (
        (tmp_path / "file" / "a" / "run", "cannot write run directory"),
        (tmp_path / "file", "is not a directory"),
        (tmp_path / "full", "--force"),
    ):
        with pytest.raises(RunDirError, match=said):
            rundir.check_new_run_dir(path)
    rundir.check_new_run_dir(tmp_path / "full", force=True)
    rundir.check_new_run_dir(tmp_path / "new" / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full"]  # nothing created


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(stat.S_IRUSR | stat.S_IXUSR)  # 0o500
    try:
        yield parent
    finally:
        parent.chmod(stat.S_IRWXU)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_create_run_dir_in_an_unwritable_parent_is_an_error(read_only_dir: Path) -> None:
    path = read_only_dir / "run"
    with pytest.raises(RunDirError, match="cannot write run directory"):
        rundir.create_run_dir(path)
    assert not path.exists()


def test_default_run_dir_names_and_unique_suffix(tmp_path: Path) -> None:
    unix_s = 1_700_000_000.9  # 2023-11-14T22:13:20.9Z
    first = rundir.default_run_dir(tmp_path, "kserve_v2", unix_s)
    assert first == tmp_path / "20231114T221320Z-kserve_v2"
    assert not first.exists()  # only a name
    first.mkdir()
    second = rundir.default_run_dir(tmp_path, "kserve_v2", unix_s)
    assert second == tmp_path / "20231114T221320Z-kserve_v2-2"
    second.mkdir()
    assert rundir.default_run_dir(tmp_path, "kserve_v2", unix_s).name == "20231114T221320Z-kserve_v2-3"
    assert rundir.default_run_dir(tmp_path, "json_post", unix_s).name == "20231114T221320Z-json_post"


def test_timestamps_are_utc() -> None:
    assert rundir.utc_stamp(0.0) == "19700101T000000Z"
    assert rundir.iso_utc(1_700_000_000.1234) == "2023-11-14T22:13:20.123Z"


def test_write_json_round_trip_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    data = {"a": 1, "nested": {"b": [1.5, None, "x"]}, "ü": "ß"}
    rundir.write_json(path, data)
    assert rundir.read_json(path) == data
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert list(text)[:3] == ["{", "\n", " "]  # indented, for humans
    rundir.write_json(path, {"replaced": True})
    assert rundir.read_json(path) == {"replaced": True}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_write_json_failure_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    rundir.write_json(path, {"version": 1})
    with pytest.raises(ValueError):
        rundir.write_json(path, {"version": 2, "bad": float("nan")})  # strict JSON: no NaN
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_read_json_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="is missing"):
        rundir.read_json(tmp_path / "meta.json")


def test_read_json_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text('{\n  "format": 1,\n  "settings": ,\n}\n')
    with pytest.raises(RunDirError, match=r"is not valid JSON \(line 3: ") as info:
        rundir.read_json(path)
    assert "\n" not in str(info.value)


def test_read_json_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text('{"format": 1, "sett')
    with pytest.raises(RunDirError, match="is not valid JSON"):
        rundir.read_json(path)


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "3", "null"])
def test_read_json_needs_an_object(tmp_path: Path, content: str) -> None:
    path = tmp_path / "meta.json"
    path.write_text(content)
    with pytest.raises(RunDirError, match="does not hold a JSON object"):
        rundir.read_json(path)


def test_read_json_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RunDirError, match="cannot read"):
        rundir.read_json(path)


def _meta(**overrides: object) -> dict[str, object]:
    meta: dict[str, object] = {"format": 1, "started_unix_s": 1000.0, "settings": {"users": 1}}
    meta.update(overrides)
    return meta


def test_read_meta_reads_a_run_dir(tmp_path: Path) -> None:
    rundir.write_json(tmp_path / rundir.META, _meta(run_id="x"))
    assert rundir.read_meta(tmp_path)["run_id"] == "x"


def test_read_meta_refuses_a_newer_format(tmp_path: Path) -> None:
    rundir.write_json(tmp_path / rundir.META, _meta(format=rundir.FORMAT_VERSION + 1))
    with pytest.raises(
        RunDirError,
        match=f"run format {rundir.FORMAT_VERSION + 1}; this loadbench reads up to {rundir.FORMAT_VERSION}",
    ):
        rundir.read_meta(tmp_path)


@pytest.mark.parametrize("key", ["format", "started_unix_s", "settings"])
def test_read_meta_needs_its_fields(tmp_path: Path, key: str) -> None:
    meta = _meta()
    del meta[key]
    rundir.write_json(tmp_path / rundir.META, meta)
    with pytest.raises(RunDirError, match=f"has no '{key}' field"):
        rundir.read_meta(tmp_path)


def test_read_meta_of_a_missing_or_foreign_directory(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        rundir.read_meta(tmp_path / "nope")
    with pytest.raises(RunDirError, match=r"is not a loadbench run directory: meta\.json is missing"):
        rundir.read_meta(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="does not exist"):
        rundir.read_meta(tmp_path / "file")


@pytest.mark.parametrize("value", ["1", None])
def test_read_meta_with_a_non_numeric_format_is_a_run_dir_error(tmp_path: Path, value: object) -> None:
    rundir.write_json(tmp_path / rundir.META, _meta(format=value))
    with pytest.raises(RunDirError):
        rundir.read_meta(tmp_path)
