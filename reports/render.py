"""Turn report sections (text, inline SVG charts, sortable tables) into one self-contained HTML file.

Every report (calibration, what-if, study) builds a list of `Section`s and calls `render_page` with its
template; `write_html` writes the file atomically. Nothing in the page is fetched from anywhere.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup

from simulator.atomic import write_atomic
from simulator.errors import UserError

TEMPLATES = Path(__file__).parent / "templates"

Cell = str | int | float | None


@dataclass
class Table:
    """A sortable table; numeric cells sort as numbers and print with 4 significant digits."""

    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Section:
    """One titled part of a report; `missing` is the visible note shown when its data source is absent
    (after `missing_label`)."""

    id: str
    title: str
    text: str = ""
    charts: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    missing: str = ""
    missing_label: str = "Not measured yet."
    notes: list[str] = field(default_factory=list)


def cell_text(v: Cell) -> str:
    """Display text of a table cell: floats to 4 significant digits, None and NaN as an em dash."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.4g}"


def cell_sort(v: Cell) -> str:
    """Sort key stored in `data-v`: the number to 8 significant digits, or the text lower-cased."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return f"{float(v):.8g}"
    return "" if v is None else str(v).lower()


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["cell_text"] = cell_text
    env.filters["cell_sort"] = cell_sort
    env.filters["chart"] = Markup  # built by reports.charts, which escapes every text it embeds
    return env


def render_page(template: str, title: str, sections: list[Section], **context) -> str:
    """Render `templates/<template>` with the sections and any extra context into one HTML string."""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return _env().get_template(template).render(title=title, sections=sections, generated=now, **context)


def check_output(path: str | os.PathLike, option: str = "") -> Path:
    """The output path, if a file can be written there; else a UserError naming `option` (the flag that gave
    it), called before any long work."""
    out, flag = Path(path), f"{option} " if option else ""
    if not str(path).strip():
        raise UserError(f"{option or 'output'}: give a file name")
    if out.is_dir():
        raise UserError(f"{flag}output '{out}' is a folder; give a file name such as report.html")
    if not out.parent.is_dir():
        raise UserError(f"{flag}output folder '{out.parent}' does not exist; create it or pick another path")
    return out


def write_html(path: str | os.PathLike, html: str) -> Path:
    """Write the page atomically (temp file in the same folder, then rename); returns the path."""
    out = check_output(path)
    write_atomic(out, html)
    return out
