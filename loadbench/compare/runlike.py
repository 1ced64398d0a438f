"""What the comparison's renderers read of a loaded run, and how they name it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy.typing as npt
import pandas as pd

from loadbench.report.fmt import as_dict


class RunLike(Protocol):
    """What the renderer reads of a loaded run (`loadbench.compare.rundata.RunData` has it all)."""

    @property
    def path(self) -> Path: ...
    @property
    def meta(self) -> dict[str, Any]: ...
    @property
    def summary(self) -> dict[str, Any]: ...
    @property
    def latency_ms(self) -> npt.NDArray[Any] | None: ...  # None: in the run's store (`RunData.stored`)
    @property
    def timeseries(self) -> pd.DataFrame: ...
    @property
    def samples(self) -> pd.DataFrame: ...


def run_label(run: RunLike, index: int) -> str:
    """``base: ID``, ``candidate: ID``, ``candidate 3: ID``: the run's role by its place in the list."""
    role = "base" if index == 0 else "candidate" if index == 1 else f"candidate {index}"
    info = as_dict(run.summary.get("run"))
    run_id = run.meta.get("run_id") or info.get("id") or Path(run.path).name
    return f"{role}: {run_id}"
