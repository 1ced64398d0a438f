"""Tests of the report kit's templates: a value placed by a template is escaped exactly as `esc`
escapes it, and the macros give the markup the kit's Python builders always gave."""

from __future__ import annotations

from loadbench.report.fmt import DASH
from loadbench.report.html import TEMPLATES, esc, grid_table, kv_table, trusted

HOSTILE = "<script>alert('x')</script>\u202e\"&"


def test_template_values_are_escaped_like_esc() -> None:
    template = TEMPLATES.from_string("{{ v }}|{{ m }}|{{ n }}|{{ i }}")
    out = template.render(v=HOSTILE, m=trusted("<b>kit</b>"), n=None, i=3)
    assert out == f"{esc(HOSTILE)}|<b>kit</b>|{DASH}|3"
    assert "<script" not in out and "\u202e" not in out and "&lt;U+202E&gt;" in out


def test_kit_tables_escape_headers_and_keep_built_cells() -> None:
    table = grid_table([HOSTILE, "n"], [[esc(HOSTILE), "<b>1</b>"]], numeric={1})
    assert table == (
        f"<table><thead><tr><th scope='col'>{esc(HOSTILE)}</th><th scope='col' class=n>n</th></tr></thead>"
        f"<tbody><tr><td>{esc(HOSTILE)}</td><td class=n><b>1</b></td></tr></tbody></table>"
    )
    assert kv_table([(HOSTILE, "<i>v</i>")]) == (
        f"<table class='kv'><tr><th scope='row'>{esc(HOSTILE)}</th><td><i>v</i></td></tr></table>"
    )


def test_grid_macro_shows_mono_columns_as_code() -> None:
    kit = TEMPLATES.get_template("kit.html.j2").module
    out = str(kit.grid_table(["a", "b"], [[HOSTILE, "2"]], (1,), mono=(0,)))
    assert f"<td><span class='mono'>{esc(HOSTILE)}</span></td><td class=n>2</td>" in out
