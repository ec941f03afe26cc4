"""The report's page: its content in order (:class:`Page`), rendered by Jinja2 templates to
Markdown and to one self-contained HTML document (figures embedded; inline Markdown of the text
rendered by markdown-it-py, raw HTML escaped)."""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markdown_it import MarkdownIt
from markupsafe import Markup

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; max-width: 72rem;
       margin: 2rem auto; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.55rem; text-align: left; }
th { background: #f2f2f2; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f4f4f4; padding: 0 0.2rem; border-radius: 3px; font-size: 0.9em; }
img { max-width: 100%; height: auto; display: block; margin: 0.8rem 0; border: 1px solid #eee; }
li { margin: 0.25rem 0; }
"""
NUMERIC_TEXT = re.compile(r"-?\d+(\.\d+)?( to -?\d+(\.\d+)?|-\d+)?")
"""A cell that reads as a number, a range ("1-2") or an interval ("79.3 to 89.5"): aligned right."""


@dataclass
class Page:
    """The content of a report, in order; each ``add_*`` returns the page."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def add_heading(self, text: str) -> Page:
        """A section heading."""
        self.blocks.append(("heading", text))
        return self

    def add_paragraph(self, text: str) -> Page:
        """A paragraph of text."""
        self.blocks.append(("paragraph", text))
        return self

    def add_bullets(self, items: list[str]) -> Page:
        """A bullet list (nothing when ``items`` is empty)."""
        if items:
            self.blocks.append(("bullets", list(items)))
        return self

    def add_table(self, table: pd.DataFrame) -> Page:
        """A table (its cells shown as they are; empty cells for None and NaN)."""
        self.blocks.append(("table", table))
        return self

    def add_figure(self, path: str, alt: str) -> Page:
        """A figure: an image file relative to the page's folder, with its description."""
        self.blocks.append(("figure", (path, alt)))
        return self


def cell_text(value: Any) -> str:
    """A table cell as text: empty for None and NaN."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def is_number(value: Any) -> bool:
    """Whether a cell reads as a number, range or interval (aligned right in HTML)."""
    if isinstance(value, str):
        return NUMERIC_TEXT.fullmatch(value) is not None
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_INLINE = MarkdownIt("commonmark", {"html": False})


def inline_html(text: str) -> Markup:
    """The inline Markdown of ``text`` (code, emphasis, links) as HTML; raw HTML is escaped."""
    return Markup(_INLINE.renderInline(text))


def embedded_image(folder: Path, path: str) -> str:
    """A ``data:`` URL of an image file, so that the page is one file."""
    kind = "svg+xml" if path.endswith(".svg") else "png"
    return f"data:image/{kind};base64," + base64.b64encode((folder / path).read_bytes()).decode("ascii")


@cache
def _environment(autoescape: bool) -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("pystatsml_tl.runs.report", "templates"),
                                     autoescape=autoescape, keep_trailing_newline=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    environment.filters |= {"inline": inline_html, "cell": cell_text,
                            "markdown_cell": lambda value: cell_text(value).replace("|", "\\|")}
    environment.tests["number"] = is_number
    return environment


def _rows(table: pd.DataFrame) -> list[tuple]:
    return list(table.itertuples(index=False))


def to_markdown(page: Page) -> str:
    """The page as Markdown (``templates/summary.md.j2``)."""
    return _environment(False).get_template("summary.md.j2").render(page=page, rows=_rows)


def to_html(page: Page, folder: str | Path) -> str:
    """The page as one self-contained HTML document (``templates/summary.html.j2``); figures are
    read from ``folder`` and embedded."""
    return _environment(True).get_template("summary.html.j2").render(
        page=page, rows=_rows, style=Markup(STYLE), image=lambda path: embedded_image(Path(folder), path))
