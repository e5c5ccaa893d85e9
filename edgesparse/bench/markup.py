"""Markup dialects for the bench report: the one place that knows Markdown or HTML syntax,
and the number formats both share.

A dialect (:class:`Markdown` or :class:`Html`) escapes data text and wraps headings, tables,
lists, code and images; the report's content (:mod:`edgesparse.bench.report`) is written once
against either.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

#: The label every emulated number carries (the HTML dialect highlights it).
EMULATED = "(emulated)"

# --------------------------------------------------------------------------------------------
# Number formatting (shared by Markdown and HTML)
# --------------------------------------------------------------------------------------------

DASH = "-"


def fmt_us(v: float | None) -> str:
    """Microseconds with 2, 1 or 0 decimals by size; a dash for None."""
    if v is None:
        return DASH
    if v < 10:
        return f"{v:.2f}"
    if v < 1000:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def fmt_ratio(v: float | None) -> str:
    """A ratio as ``1.23x``; a dash for None."""
    return DASH if v is None else f"{v:.2f}x"


def fmt_rate(v: float | None) -> str:
    """Rows per second (whole numbers from 100 up); a dash for None."""
    if v is None:
        return DASH
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def fmt_ms(v: float | None) -> str:
    """Milliseconds with one decimal; a dash for None."""
    return DASH if v is None else f"{v:,.1f}"


def fmt_exact_bytes(v: int | None) -> str:
    """A byte count to the byte (``1,120 B``); a dash for None."""
    return DASH if v is None else f"{v:,} B"


def fmt_mem(v: int | None) -> str:
    """A memory size in binary units; a dash for None."""
    if v is None:
        return DASH
    sign = "-" if v < 0 else ""
    a = abs(v)
    if a < 1024:
        return f"{sign}{a} B"
    if a < 1024 * 1024:
        return f"{sign}{a / 1024:.1f} KiB"
    if a < 1024**3:
        return f"{sign}{a / 1024**2:.1f} MiB"
    return f"{sign}{a / 1024**3:.2f} GiB"


def fmt_pct(v: float | None) -> str:
    """A share as a percentage with two decimals; a dash for None."""
    return DASH if v is None else f"{v:.2%}"


# --------------------------------------------------------------------------------------------
# Dialects: the one place that knows Markdown or HTML syntax
# --------------------------------------------------------------------------------------------

#: A list item: text, or text with nested sub-items (already escaped for the dialect).
Item = str | tuple[str, Sequence[str]]

_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|&#~])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


class Markdown:
    """GitHub-flavoured Markdown. ``esc`` makes data text literal (no markup, no raw HTML)."""

    def esc(self, s: object) -> str:
        text = " ".join(str(s).split())  # newlines would break tables and list items
        return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)

    def code(self, s: object) -> str:
        text = " ".join(str(s).split())
        fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
        # Inside a table a raw | ends the cell even in a code span; GFM accepts \| there.
        text = text.replace("|", "\\|")
        # CommonMark strips one space on each side; needed only next to a backtick.
        pad = " " if text.startswith("`") or text.endswith("`") else ""
        return f"{fence}{pad}{text}{pad}{fence}"

    def strong(self, s: str) -> str:
        return f"**{s}**"

    def heading(self, level: int, s: str) -> str:
        return f"{'#' * level} {s}"

    def para(self, s: str) -> str:
        return s

    def items(self, items: Sequence[Item]) -> str:
        lines = []
        for item in items:
            text, sub = (item, ()) if isinstance(item, str) else item
            lines.append(f"- {text}")
            lines.extend(f"  - {s}" for s in sub)
        return "\n".join(lines)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
        rule = ["---:" if j in right else "---" for j in range(len(headers))]
        lines = [headers, rule, *rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)

    def image(self, src: str, alt: str) -> str:
        return f"![{self.esc(alt)}]({src.replace(' ', '%20').replace(')', '%29')})"

    def document(self, title: str, blocks: Sequence[str]) -> str:
        return "\n\n".join(blocks) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto;
       max-width: 80em; padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; font-size: 0.92em; }
th, td { border: 1px solid #c8c8c8; padding: 0.25em 0.55em; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 0.2em; border-radius: 3px; }
img { max-width: 100%; border: 1px solid #e0e0e0; }
.emulated { color: #8a4b00; font-weight: 600; }
"""


class Html:
    """A self-contained HTML page. ``esc`` escapes every character HTML gives meaning to."""

    def esc(self, s: object) -> str:
        return html.escape(str(s), quote=True)

    def code(self, s: object) -> str:
        return f"<code>{self.esc(s)}</code>"

    def strong(self, s: str) -> str:
        return f"<strong>{s}</strong>"

    def heading(self, level: int, s: str) -> str:
        return f"<h{level}>{self._mark(s)}</h{level}>"

    def _mark(self, s: str) -> str:
        # Colour the emulated label where it names a target or a column (safe on escaped
        # text: the label has no character HTML escapes).
        return s.replace(EMULATED, f'<span class="emulated">{EMULATED}</span>')

    def para(self, s: str) -> str:
        return f"<p>{s}</p>"

    def items(self, items: Sequence[Item]) -> str:
        lines = []
        for item in items:
            text, sub = (item, ()) if isinstance(item, str) else item
            nested = "".join(f"<li>{s}</li>" for s in sub)
            lines.append(f"<li>{text}<ul>{nested}</ul></li>" if sub else f"<li>{text}</li>")
        return "<ul>\n" + "\n".join(lines) + "\n</ul>"

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
        head = "".join(f"<th>{self._mark(h)}</th>" for h in headers)
        body = "\n".join(
            "<tr>"
            + "".join(
                f'<td class="num">{cell}</td>' if j in right else f"<td>{cell}</td>"
                for j, cell in enumerate(cells)
            )
            + "</tr>"
            for cells in rows
        )
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"

    def image(self, src: str, alt: str) -> str:
        return f'<figure><img src="{self.esc(src)}" alt="{self.esc(alt)}"></figure>'

    def document(self, title: str, blocks: Sequence[str]) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{self.esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(blocks)
            + "\n</body>\n</html>\n"
        )


#: Either dialect: the content is written once against this.
Dialect = Markdown | Html
