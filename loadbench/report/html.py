"""The HTML kit of every report: the stylesheet, escaping, tables, inline figures, atomic writes.

Everything that came from the server or the user is data, never markup: `esc` escapes it
(bidirectional-text controls shown as code points), and the table builders take cells that are
already escaped.
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
from collections.abc import Container, Iterable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from loadbench.errors import RunDirError
from loadbench.report.fmt import DASH


def _finalize(value: Any) -> Any:
    # Every value a template places goes through `esc`, so a page escapes exactly as the kit's
    # builders do (bidirectional controls shown, a dash for None); kit-built Markup passes as is.
    return value if isinstance(value, Markup) else Markup(esc(value))


# Autoescaping on: a value placed into a page is escaped unless it is `Markup` (HTML that the kit
# built, every piece of data in it escaped). StrictUndefined: a misspelt name fails, not blanks.
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("loadbench.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    finalize=_finalize,
)
TEMPLATES.globals["DASH"] = DASH  # what a template shows for a missing value
KIT = "kit.html.j2"  # the macros: tables, figures, tiles, notices


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` atomically (temp file + rename); a full disk is a one-line `RunDirError`."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise RunDirError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RunDirError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


CSS = """
:root { --fg:#1d2330; --muted:#5b6472; --line:#dfe3ea; --bg:#f6f7f9; --ok:#2e7d32; --warn:#b26a00;
  --bad:#c62828; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
  sans-serif; color: var(--fg); background: #fff; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 20px 40px; }
h1 { font-size: 22px; margin: 0 0 6px; overflow-wrap: anywhere; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 16px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600;
  color: #fff; vertical-align: middle; margin-left: 8px; }
.badge.ok { background: var(--ok); } .badge.warn { background: var(--warn); }
.badge.bad { background: var(--bad); }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 10px; }
.tile { background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.tile .v { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.alert { background: #fdecea; border: 1px solid #f1b0aa; border-left: 5px solid var(--bad);
  border-radius: 6px; padding: 10px 14px; margin: 16px 0 0; }
.flag { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 11.5px; font-weight: 600;
  color: #fff; background: var(--bad); margin-left: 6px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
.notices { background: #fff8e1; border: 1px solid #f2d48a; border-left: 5px solid var(--warn);
  border-radius: 6px; padding: 10px 14px 10px 32px; margin: 16px 0 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.n, th.n { text-align: right; white-space: nowrap; }
table + table { margin-top: 14px; }
table.kv th { width: 230px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px;
  overflow-wrap: anywhere; }
figure { margin: 0 0 18px; }
img.plot { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
footer { margin-top: 32px; padding-top: 10px; border-top: 1px solid var(--line); color: var(--muted);
  font-size: 12.5px; }
@media print {
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; }
  figure, .tile, tr { break-inside: avoid; }
  .badge { border: 1px solid #000; color: #000; background: none !important; }
}
"""

# Bidirectional-text controls would let server text reverse how a cell reads: show them instead.
_BIDI_CONTROLS = {c: f"<U+{c:04X}>" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}


def visible_text(text: str) -> str:
    """Bidirectional-text control characters replaced by their code points, e.g. ``<U+202E>``."""
    return text.translate(_BIDI_CONTROLS)


def esc(value: Any) -> str:
    """Escape any value for HTML text or attribute; missing values show as a dash."""
    if value is None:
        return DASH
    return html.escape(visible_text(str(value)), quote=True)


def dir_link(name: str, page: str) -> str:
    """A link to ``./NAME/PAGE``, shown as NAME: a run's or a sweep's page in a directory beside
    this one. "./" first: a directory name can never be read as a scheme (javascript:...)."""
    return f"<a class='mono' href='./{esc(name)}/{page}'>{esc(name)}</a>"


def kv_table(rows: Iterable[tuple[str, str]]) -> str:
    """Two-column table; values are already-escaped HTML."""
    return str(_kit().kv_table([(k, trusted(v)) for k, v in rows]))


def grid_table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Container[int]) -> str:
    """A table whose cells are already-escaped HTML; ``numeric`` columns are right-aligned."""
    return str(_kit().grid_table(list(headers), [[trusted(c) for c in r] for r in rows], numeric))


def figure_html(figure_id: str, png: bytes, title: str, caption: str) -> str:
    """A ``<figure>`` with the PNG inline (no network) and an escaped title and caption."""
    return str(_kit().figure(figure_id, png_base64(png), title, caption))


def png_base64(png: bytes) -> str:
    """PNG bytes as the base64 text of a ``data:`` URL: the page needs no file beside it."""
    return base64.b64encode(png).decode("ascii")


def _kit() -> Any:
    # The macros as a module of callables; jinja2 caches the template and its module.
    return TEMPLATES.get_template(KIT).module


def render_template(name: str, **context: Any) -> str:
    """A page from ``loadbench/report/templates/NAME``; pass kit-built HTML as `Markup` (see `trusted`)."""
    return TEMPLATES.get_template(name).render(**context)


def trusted(fragment: str) -> Markup:
    """Mark HTML built by this kit (every value in it already passed through `esc`) as markup."""
    return Markup(fragment)
