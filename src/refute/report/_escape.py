"""One escaping rule for every text that came from a model or a user (replies, prompts, run names,
categories, model specs, dataset names, study and policy text), in HTML and in Markdown.

Such text is shown as itself and never becomes markup:

* HTML: ``&``, ``<``, ``>``, ``"`` and ``'`` become entities (`html.escape`).
* Markdown, inline (`md_text`, `md_cell`): line breaks become spaces and the ends are stripped, so
  the text stays on its line; the characters that start inline markup (``\\ ` * _ [ ] < > & | ~``)
  get a backslash, so no code span, emphasis, link, image, autolink, raw HTML, entity, strikethrough
  or table cell border can form (a CommonMark renderer turns ``\\<`` into ``&lt;``); and a leading
  character that could open a block (``#``, ``-``, ``+``, ``=``, ``1.``, ...) is escaped too, since
  the text may begin a list item or a quote. Other punctuation is left as is, so the Markdown stays
  readable. (GFM's extended autolinks turn bare ``http://``/``www.`` text into links whatever the
  escaping; they never make a ``javascript:`` link.)
* Markdown, verbatim (`md_code_block`): a fenced code block whose fence is longer than any run of
  backticks in the text, so nothing inside can close it; its content is never parsed.

The CSV export has its own rule for spreadsheet formulas (`refute.store.export_run`).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

__all__ = ["html_text", "md_cell", "md_code_block", "md_text", "write_page"]

# Characters that open inline markup anywhere in a line (CommonMark and GFM).
_MD_INLINE = re.compile(r"([\\`*_\[\]<>&|~])")
# At the start: any ASCII punctuation (all of it may be backslash-escaped in CommonMark), or the
# "." / ")" of an ordered-list marker ("12. " or "3)" at the end; not "0.5").
_MD_BLOCK_START = re.compile(r"""^([!"#$%'()*+,\-./:;=?@^{}])|^(\d{1,9})([.)])(?=[ \t]|$)""")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the three line endings of CommonMark
_BACKTICKS = re.compile(r"`+")


def html_text(s: object) -> str:
    """``s`` as HTML text or attribute value: ``&<>"'`` as entities."""
    return html.escape(str(s), quote=True)


def md_text(s: object) -> str:
    """``s`` as inert inline Markdown on one line: markup characters backslash-escaped."""
    text = _MD_INLINE.sub(r"\\\1", _LINE_BREAK.sub(" ", str(s)).strip())
    return _MD_BLOCK_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text, count=1)


def md_cell(s: object) -> str:
    """``s`` as an inert cell of a (GFM) Markdown table: `md_text`, which also escapes ``|``."""
    return md_text(s)


def md_code_block(s: object, info: str = "text") -> str:
    """``s`` verbatim in a fenced code block (ending with a newline) that nothing in ``s`` can close."""
    text = _LINE_BREAK.sub("\n", str(s))
    fence = "`" * max(3, 1 + max((len(m) for m in _BACKTICKS.findall(text)), default=0))
    return f"{fence}{info}\n{text}" + ("" if text.endswith("\n") or not text else "\n") + f"{fence}\n"


def write_page(path: str | Path, html: str, markdown: str) -> tuple[Path, Path]:
    """Write ``html`` to ``path`` (``.html`` added unless it ends in .html/.htm) and ``markdown``
    beside it with the same stem and ``.md``; returns both paths."""
    html_path = Path(path)
    if html_path.suffix.lower() not in (".html", ".htm"):
        html_path = html_path.with_suffix(".html")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(html, encoding="utf-8")
    md_path = html_path.with_suffix(".md")
    md_path.write_text(markdown, encoding="utf-8")
    return html_path, md_path
