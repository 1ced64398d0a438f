"""Data files shipped with loadbench."""

from __future__ import annotations

from pathlib import Path

# The demo endpoint's held-out digits test set: one /predict body per line, label in "_expected".
DIGITS_JSONL = Path(__file__).with_name("digits.jsonl")
