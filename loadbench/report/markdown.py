"""The Markdown kit of every report: text safe inside a GitHub table cell, and tables."""

from __future__ import annotations

import html
from collections.abc import Container, Iterable, Sequence
from typing import Any

from loadbench.report.html import visible_text

# Enough to stop links, images, @mentions and #references; emphasis inside a word is harmless.
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\[]@#"})


def md(value: Any) -> str:
    """Text safe inside a GitHub table cell: one line, no raw HTML, and Markdown syntax
    (links, images, emphasis, @mentions, #references, ``|``) shown as text, not acted on."""
    text = visible_text(" ".join(str(value).split())).translate(_MD_SPECIAL)
    return html.escape(text, quote=False).replace("|", "\\|")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Container[int]) -> list[str]:
    align = ["---:" if i in numeric else "---" for i in range(len(headers))]
    out = ["| " + " | ".join(md(h) for h in headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]
    return out
