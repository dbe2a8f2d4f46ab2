"""HTML mail bodies to plain text: paragraphs, line breaks, lists and quotes kept. Pure.

Uses the stdlib ``html.parser`` (fast enough, tolerant of broken markup). Script, style and
head content is dropped, entities are decoded, ``<li>`` becomes a ``- `` line and
``<blockquote>`` content becomes ``> `` lines, so that the quote stripper treats HTML and plain
replies alike. It never fetches anything (images, CSS) and never raises.
"""

import contextlib
import re
from html.parser import HTMLParser

#: Inputs longer than this are cut before conversion (a real mail body is never this long).
MAX_HTML_CHARS = 2_000_000

_SKIP = frozenset({"script", "style", "head", "title", "noscript", "template", "xml", "svg"})
_PARAGRAPH = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "dl", "pre", "address", "figure",
        "fieldset", "form", "center", "hr",
    }
)  # fmt: skip
_LINE = frozenset(
    {
        "div", "tr", "dt", "dd", "section", "article", "header", "footer", "nav", "aside",
        "main", "caption", "details", "summary", "tbody", "thead", "tfoot",
    }
)  # fmt: skip
_CELL = frozenset({"td", "th"})

_PRE_SPACE = "\x03"
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000\ufeff]+")
_URL = re.compile(r"^https?://", re.IGNORECASE)


class _TextBuilder(HTMLParser):
    """Collects text lines (each with its quote depth) while the parser walks the markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, list[str]]] = [(0, [])]
        self.pending = 0
        self.quote_depth = 0
        self.skip_tag: str | None = None
        self.skip_depth = 0
        self.pre_depth = 0
        self.list_depth = 0
        self.link_href: str | None = None
        self.link_text: list[str] = []

    def _block(self, breaks: int) -> None:
        """A block boundary: at least ``breaks`` line ends before the next text."""
        self.pending = max(self.pending, breaks)

    def _emit(self, text: str) -> None:
        if self.pending:
            if len(self.lines) > 1 or self.lines[0][1]:
                for _ in range(self.pending):
                    self.lines.append((self.quote_depth, []))
            self.pending = 0
        parts = self.lines[-1][1]
        if not parts:
            if not self.pre_depth:
                text = text.lstrip(" ")
                if not text:
                    return
            self.lines[-1] = (self.quote_depth, parts)
        parts.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_depth:
            self.skip_depth += tag == self.skip_tag
            return
        if tag in _SKIP:
            self.skip_tag, self.skip_depth = tag, 1
        elif tag == "br":
            if self.lines[-1][1] or len(self.lines) > 1:
                self.pending += 1
        elif tag == "blockquote":
            self._block(2)
            self.quote_depth += 1
        elif tag in ("ul", "ol"):
            self.list_depth += 1
            self._block(1 if self.list_depth > 1 else 2)
        elif tag == "li":
            self._block(1)
            self._emit(_PRE_SPACE * 2 * max(self.list_depth - 1, 0) + "- ")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self.link_href = href if _URL.match(href) else None
            self.link_text = []
        elif tag in _PARAGRAPH:
            self._block(2)
            self.pre_depth += tag == "pre"
        elif tag in _LINE:
            self._block(1)
        elif tag in _CELL and self.lines[-1][1]:
            self._emit(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr", "img", "meta", "link", "input", "wbr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skip_depth:
            if tag == self.skip_tag:
                self.skip_depth -= 1
            return
        if tag == "blockquote":
            self._block(2)
            self.quote_depth = max(self.quote_depth - 1, 0)
        elif tag in ("ul", "ol"):
            self.list_depth = max(self.list_depth - 1, 0)
            self._block(1 if self.list_depth else 2)
        elif tag == "a":
            href, self.link_href = self.link_href, None
            text = "".join(self.link_text).strip()
            if href and text and href.rstrip("/") not in text and text not in href:
                parts = self.lines[-1][1]
                spaced = bool(parts) and parts[-1].endswith(" ")
                self._emit(f"({href})" if spaced else f" ({href})")
        elif tag in _PARAGRAPH:
            self._block(2)
            if tag == "pre":
                self.pre_depth = max(self.pre_depth - 1, 0)
        elif tag in _LINE:
            self._block(1)

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        data = _CONTROL.sub("", data)
        if self.pre_depth:
            data = data.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
            for i, chunk in enumerate(data.split("\n")):
                if i:
                    self.pending += 1
                if chunk:
                    self._emit(chunk.replace(" ", _PRE_SPACE))
            return
        text = _SPACES.sub(" ", data)
        if self.link_href is not None:
            self.link_text.append(text)
        self._emit(text)

    def text(self) -> str:
        """The collected text: quote depth as ``> `` prefixes, runs of blank lines folded."""
        kept: list[tuple[int, str]] = []
        for depth, parts in self.lines:
            line = "".join(parts).strip(" ").replace(_PRE_SPACE, " ").rstrip()
            if line or (kept and kept[-1][1]):
                kept.append((depth, line))
        while kept and not kept[-1][1]:
            kept.pop()
        out: list[str] = []
        for i, (depth, line) in enumerate(kept):
            if line:
                out.append("> " * depth + line)
            else:  # a blank line belongs to the shallower of its neighbours
                out.append(("> " * min(kept[i - 1][0], kept[i + 1][0])).rstrip())
        return "\n".join(out)


def html_to_text(html: str) -> str:
    """Convert an HTML body to plain text; never raises."""
    builder = _TextBuilder()
    with contextlib.suppress(Exception):  # keep what was converted before the parser gave up
        builder.feed(html[:MAX_HTML_CHARS])
        builder.close()
    try:
        return builder.text()
    except Exception:  # never lose a mail over its markup
        return ""
