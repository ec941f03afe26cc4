"""A report as a page: headings, paragraphs, bullet lists, tables and figures, rendered to
Markdown (``summary.md``) or to one self-contained HTML file (``summary.html``: figures embedded,
styles inline, no script and nothing fetched from a network).

Text may hold the Markdown a report uses: ``code``, **bold** and [links](target).
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

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


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def to_markdown(page: Page) -> str:
    """The page as Markdown."""
    lines = [f"# {page.title}", ""]
    for kind, content in page.blocks:
        if kind == "heading":
            lines += [f"## {content}", ""]
        elif kind == "paragraph":
            lines += [content, ""]
        elif kind == "bullets":
            lines += [f"- {item}" for item in content] + [""]
        elif kind == "table":
            lines += ["| " + " | ".join(map(str, content.columns)) + " |", "|" + "---|" * len(content.columns)]
            lines += ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |"
                      for row in content.itertuples(index=False)] + [""]
        elif kind == "figure":
            path, alt = content
            lines += [f"![{alt}]({path})", ""]
    return "\n".join(lines)


def inline_html(text: str) -> str:
    """Escape ``text`` for HTML, then render its ``code``, **bold** and [links](target)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        escaped = html.escape(part)
        escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
        escaped = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', escaped)
        out.append(escaped)
    return "".join(out)


NUMERIC_TEXT = re.compile(r"-?\d+(\.\d+)?( to -?\d+(\.\d+)?|-\d+)?")
"""A cell that reads as a number, a range ("1-2") or an interval ("79.3 to 89.5"): aligned right."""


def _is_number(value: Any) -> bool:
    if isinstance(value, str):
        return NUMERIC_TEXT.fullmatch(value) is not None
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _html_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for row in table.itertuples(index=False):
        cells = "".join(f'<td class="number">{html.escape(_cell(v))}</td>' if _is_number(v)
                        else f"<td>{inline_html(_cell(v))}</td>" for v in row)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _embedded_image(folder: Path, path: str, alt: str) -> str:
    data = base64.b64encode((folder / path).read_bytes()).decode("ascii")
    kind = "svg+xml" if path.endswith(".svg") else "png"
    return f'<img src="data:image/{kind};base64,{data}" alt="{html.escape(alt)}">'


def to_html(page: Page, folder: str | Path) -> str:
    """The page as one self-contained HTML document; figures are read from ``folder`` and embedded."""
    folder = Path(folder)
    body = [f"<h1>{inline_html(page.title)}</h1>"]
    for kind, content in page.blocks:
        if kind == "heading":
            body.append(f"<h2>{inline_html(content)}</h2>")
        elif kind == "paragraph":
            body.append(f"<p>{inline_html(content)}</p>")
        elif kind == "bullets":
            body.append("<ul>" + "".join(f"<li>{inline_html(item)}</li>" for item in content) + "</ul>")
        elif kind == "table":
            body.append(_html_table(content))
        elif kind == "figure":
            body.append(_embedded_image(folder, *content))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<link rel=\"icon\" href=\"data:,\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(page.title)}"
            f"</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
