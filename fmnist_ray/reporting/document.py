"""A small document model (headings, facts, tables, figures, links) and its two renderings,
Markdown and HTML: the report describes each page once and writes it in both formats."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

# Pages read on a phone too: tables scroll sideways instead of squeezing values onto two lines.
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1400px;margin:1.5em auto;padding:0 1em;"
    "line-height:1.45;color:#222}"
    ".scroll{overflow-x:auto;margin:1em 0}table{border-collapse:collapse;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap;"
    "vertical-align:top}th{background:#f4f4f4;white-space:normal;vertical-align:bottom}.text{text-align:left}"
    "td.wrap{white-space:normal;min-width:9em}.nowrap{white-space:nowrap}"
    "tr.base td{background:#eef3fb}tr.winner td{background:#e6f4e9;font-weight:600}"
    "img{max-width:100%;height:auto;border:1px solid #eee}figure{margin:1em 0}"
    "code{background:#f4f4f4;padding:0 .2em}"
)


@dataclass(frozen=True)
class Link:
    """A relative link; `page` links get the format's extension (.md or .html) appended."""

    text: str
    target: str
    page: bool = False


@dataclass(frozen=True)
class Nowrap:
    """Text that a browser must not break across lines (an arm label inside a wrapping cell)."""

    text: str


Inline = str | Link | Nowrap | tuple[str | Link | Nowrap, ...]  # text, a link, or a run of them
INTERVAL = re.compile(r"\[[^\]\[]*\]")  # '[83.92, 85.70]': one value, never split in two


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    content: Inline


@dataclass(frozen=True)
class Facts:
    """'key: value' lines at the top of a page."""

    items: list[tuple[str, Inline]]


@dataclass(frozen=True)
class Bullets:
    items: list[Inline]
    empty: str = "none"  # said when there are no items


@dataclass(frozen=True)
class Column:
    name: str
    text: bool = False  # words (left-aligned) rather than numbers (right-aligned)
    wrap: bool = False  # long prose may wrap; values and labels never break mid-value


@dataclass(frozen=True)
class Row:
    cells: list[Inline]
    kind: str = ""  # 'base' or 'winner': styled in HTML (the label says so in both formats)


@dataclass(frozen=True)
class Table:
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class Figure:
    """An image (PNG) linking to its vector version (SVG)."""

    image: str
    vector: str
    alt: str


Block = Heading | Paragraph | Facts | Bullets | Table | Figure


# ---------------------------------------------------------------------------- Markdown


def _md_inline(content: Inline, table: bool = False) -> str:
    if isinstance(content, tuple):
        return "".join(_md_inline(part, table) for part in content)
    if isinstance(content, Link):
        target = content.target + (".md" if content.page else "")
        return f"[{content.text}]({target})"
    text = content.text if isinstance(content, Nowrap) else content
    return text.replace("|", "\\|") if table else text


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + block.text]
    if isinstance(block, Paragraph):
        return [_md_inline(block.content)]
    if isinstance(block, Facts):
        return [f"- **{key}**: {_md_inline(value)}" for key, value in block.items]
    if isinstance(block, Bullets):
        return [f"- {_md_inline(item)}" for item in block.items] or [block.empty]
    if isinstance(block, Figure):
        return [f"![{block.alt}]({block.image}) ([SVG]({block.vector}))"]
    header = "| " + " | ".join(column.name for column in block.columns) + " |"
    rule = "|" + "|".join(":---" if c.text else "---:" for c in block.columns) + "|"
    rows = ["| " + " | ".join(_md_inline(c, True) for c in row.cells) + " |" for row in block.rows]
    return [header, rule, *rows]


def render_markdown(blocks: list[Block]) -> str:
    """Blocks separated by blank lines (so figures and paragraphs never run together)."""
    return "\n\n".join("\n".join(_md_block(block)) for block in blocks) + "\n"


# ---------------------------------------------------------------------------- HTML


def _html_inline(content: Inline) -> str:
    if isinstance(content, tuple):
        return "".join(_html_inline(part) for part in content)
    if isinstance(content, Link):
        target = content.target + (".html" if content.page else "")
        return f"<a href='{html.escape(target)}'>{html.escape(content.text)}</a>"
    if isinstance(content, Nowrap):
        return f"<span class='nowrap'>{html.escape(content.text)}</span>"
    return INTERVAL.sub(r"<span class='nowrap'>\g<0></span>", html.escape(content))


def _html_table(table: Table) -> str:
    def css(column: Column) -> str:
        names = ["text"] * column.text + ["wrap"] * column.wrap
        return f" class='{' '.join(names)}'" if names else ""

    head = "".join(f"<th{css(c)}>{html.escape(c.name)}</th>" for c in table.columns)
    out = ["<div class='scroll'><table>", f"<thead><tr>{head}</tr></thead><tbody>"]
    for row in table.rows:
        kind = f" class='{row.kind}'" if row.kind else ""
        cells = zip(table.columns, row.cells, strict=True)
        tds = "".join(f"<td{css(c)}>{_html_inline(v)}</td>" for c, v in cells)
        out.append(f"<tr{kind}>{tds}</tr>")
    return "\n".join(out + ["</tbody></table></div>"])


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_html_inline(block.content)}</p>"
    if isinstance(block, Facts):
        items = (f"<li><b>{html.escape(k)}</b>: {_html_inline(v)}</li>" for k, v in block.items)
        return "<ul>" + "".join(items) + "</ul>"
    if isinstance(block, Bullets):
        if not block.items:
            return f"<p>{html.escape(block.empty)}</p>"
        return "<ul>" + "".join(f"<li>{_html_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Figure):
        image = f"<img src='{html.escape(block.image)}' alt='{html.escape(block.alt)}'>"
        return f"<figure><a href='{html.escape(block.vector)}'>{image}</a></figure>"
    return _html_table(block)


def render_html(title: str, blocks: list[Block]) -> str:
    head = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
    )
    return head + "\n" + "\n".join(map(_html_block, blocks)) + "\n</body></html>\n"
