"""Every file a run wrote, as text, for the tests that look for a secret in it: ``requests.parquet``
is compressed (a secret in its records need not show in its bytes), so it is read as the CSV of its
records (`loadbench.record.columnar.write_csv`); every other file as its bytes decoded."""

from __future__ import annotations

import io
from pathlib import Path

from loadbench.record.columnar import PARQUET, write_csv


def file_text(path: Path) -> str:
    """``path``'s text; a Parquet record file's records as CSV."""
    if path.name == PARQUET:
        out = io.BytesIO()
        write_csv(path, out)
        return out.getvalue().decode("utf-8", "replace")
    return path.read_bytes().decode("utf-8", "replace")


def files_text(folder: Path) -> dict[Path, str]:
    """Every file under ``folder`` (recursively) -> its text, as `file_text` reads it."""
    return {path: file_text(path) for path in sorted(folder.rglob("*")) if path.is_file()}
