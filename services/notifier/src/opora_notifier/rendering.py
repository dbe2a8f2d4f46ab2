"""Notices rendered from Jinja2 templates: subject, text, HTML and a chat line. Pure.

Templates live in ``templates/<language>/<trigger>.txt.j2`` (blocks ``subject``, ``body`` and,
for engineer alerts, ``chat``) and ``<trigger>.html.j2`` (autoescaped, extending the
language's layout). Both environments use StrictUndefined: a variable a template uses but the
planner did not provide is an error, never an empty string in a client's mail. Every subject
about a ticket carries its tag ``[#<id>]`` so that replies thread back to the ticket (the daily
digest, about many, carries none).
"""

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup, escape

from opora_notifier.notices import Notice
from opora_shared.vocabulary import Language

_LOADER = PackageLoader("opora_notifier", "templates")


class _Registry(HeaderRegistry):
    """The standard header registry, building each header class once.

    ``HeaderRegistry[name]`` makes a new class on every call (7 us), and the standard library
    calls it twice for every header set on a mail (its class, and its ``max_count``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found


class WirePolicy(EmailPolicy):
    """``email.policy.SMTP`` that writes a header needing no folding as it is.

    The standard policy re-parses every header to fold it when the mail is written, and a
    non-ASCII display name is slow to encode: 1.4 ms for a support address named
    "ООО Ромашка — поддержка", twice per mail (From and Reply-To), so writing a notification
    cost 3 ms, more than rendering and building it. A header that is ASCII and fits on one line
    folds to itself, so it is written directly; a subject with other letters is written as
    UTF-8 encoded words (``_encoded_subject``); the others (a Cyrillic display name, a long
    References) take the standard path, remembered for the next mail with the same header (the
    support address is on every mail). The bytes are the standard policy's but for the
    subject's encoded words, which read back as the same subject
    (``tests/unit/notifier/test_rendering.py`` compares them).
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        """The header as it goes on the wire, folded where it needs folding."""
        text = str(value)
        if (
            text.isascii()
            and (self.max_line_length is None or len(name) + len(text) + 2 <= self.max_line_length)
            and "\r" not in text
            and "\n" not in text
            and text == text.strip()
        ):
            return f"{name}: {text}{self.linesep}".encode("ascii")
        if name.lower() == "subject" and not text.isascii() and _one_line(text):
            return self._encoded_subject(name, text)
        key = (name.lower(), type(value), text, self.linesep, self.max_line_length)
        return _remembered(_FOLDED, key, lambda: super(WirePolicy, self).fold_binary(name, value))

    def _encoded_subject(self, name: str, text: str) -> bytes:
        """A subject with non-ASCII words as RFC 2047 encoded words.

        The subject differs from mail to mail, so remembering its folding would not help, and
        the standard fold of a Cyrillic subject costs about 190 us (it parses the header into
        tokens to encode word by word). ``email.header.Header`` encodes the whole value as
        UTF-8 encoded words split at characters, folded under the line limit, in about 35 us;
        a reader decodes both to the same subject (``tests/unit/notifier/test_rendering.py``).
        """
        header = Header(text, "utf-8", header_name=name)
        limit = self.max_line_length or 0
        return (
            f"{name}: {header.encode(linesep=self.linesep, maxlinelen=limit)}{self.linesep}".encode(
                "ascii"
            )
        )

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        """The header object for a value set on a mail, shared by mails with the same value.

        Parsing a header when it is set costs 20-70 us (more with a display name); a
        notification sets about 19, and most of them (From, Reply-To, Auto-Submitted, the
        parts' Content-Type and Content-Transfer-Encoding) repeat from one mail to the next.
        Header objects are immutable strings with their parse tree, so one can serve many mails.
        The identifiers that differ on every mail (``_OPAQUE``: Message-ID, the references,
        Date, the ticket) are kept as the strings they are when they are ASCII on one line:
        nothing reads them back, and a read would parse them then (``header_fetch_parse``). The
        subject, new on every mail too, is parsed and not remembered: a remembered subject kept
        its parse tree (about 60 objects) for thousands of mails, and the garbage collector's
        full collections walked them all again and again.
        """
        key: tuple[str, ...]
        if isinstance(value, Address):
            key = (name, "\0address", value.display_name, value.addr_spec)
        elif type(value) is str:
            lower = name.lower()
            if lower in _OPAQUE and value.isascii() and _one_line(value):
                return (name, value)
            if lower == "subject":  # new on every mail: parsed, not remembered
                return super().header_store_parse(name, value)
            key = (name, value)
        else:
            return super().header_store_parse(name, value)
        return _remembered(
            _STORED, key, lambda: super(WirePolicy, self).header_store_parse(name, value)
        )


_OPAQUE = frozenset({"message-id", "in-reply-to", "references", "date", "x-opora-ticket"})


def _one_line(text: str) -> bool:
    return len(text.splitlines()) <= 1


_FOLDED: dict[Hashable, bytes] = {}
_STORED: dict[Hashable, tuple[str, Any]] = {}
_CACHE_MAX = 4096
_V = TypeVar("_V")


def _remembered(cache: dict[Hashable, _V], key: Hashable, make: Callable[[], _V]) -> _V:
    """``cache[key]``, made on a miss; the cache starts over when it holds ``_CACHE_MAX``."""
    found = cache.get(key)
    if found is None:
        found = make()
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = found
    return found


_REGISTRY = _Registry()

WIRE = WirePolicy(linesep="\r\n", header_factory=_REGISTRY)
"""What mails are written with (the .eml outbox, SMTP): ``email.policy.SMTP``, faster."""

BUILD = WirePolicy(header_factory=_REGISTRY)
"""What mails are built with: ``email.policy.default``, faster (see ``WirePolicy``)."""


def format_due(due: datetime, timezone: str, language: Language) -> str:
    """A deadline in the client's timezone and language."""
    local = due.astimezone(ZoneInfo(timezone))
    return local.strftime("%d.%m.%Y %H:%M" if language is Language.RU else "%d %b %Y %H:%M")


def format_day(day: date, language: Language) -> str:
    """A calendar day as the reader writes it: 26.11.2026, 26 Nov 2026."""
    return day.strftime("%d.%m.%Y" if language is Language.RU else "%d %b %Y")


def format_duration(span: timedelta, language: Language) -> str:
    """A duration as people say it: '1 h 5 min', '3 d 2 h', '1 ч 5 мин'."""
    minutes = max(0, round(span.total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    units = ("д", "ч", "мин") if language is Language.RU else ("d", "h", "min")
    parts = [f"{n} {u}" for n, u in zip((days, hours, mins), units, strict=True) if n]
    return " ".join(parts[:2]) or f"0 {units[2]}"


def one_line(text: str, limit: int) -> str:
    """Whitespace collapsed, cut at ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _paragraphs(text: str | None) -> Markup:
    """Plain text as HTML paragraphs, every character escaped (for engineers' own words)."""
    if not text:
        return Markup("")
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in b.split("\n")))
        for b in blocks
    )


@dataclass(frozen=True, slots=True)
class Rendered:
    """A notice in words: subject (with the ticket tag), text, HTML, and a chat message."""

    subject: str
    text: str
    html: str
    chat: str


class Renderer:
    """Renders notices from the package's templates."""

    def __init__(self) -> None:
        common: dict[str, Any] = {
            "loader": _LOADER,
            "undefined": StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "keep_trailing_newline": True,
        }
        self._text = Environment(autoescape=False, **common)  # noqa: S701 - plain text parts
        self._html = Environment(autoescape=True, **common)
        self._html.filters["paragraphs"] = _paragraphs

    def templates(self) -> list[str]:
        """Every template name the package ships (for the render-them-all test)."""
        return sorted(self._text.list_templates(extensions=["j2"]))

    def render(self, notice: Notice) -> Rendered:
        """Subject, text, HTML and chat line of one notice."""
        lang = notice.recipient.language.value
        name = notice.trigger.value
        text = self._text.get_template(f"{lang}/{name}.txt.j2")
        context = {
            **notice.context,
            "language": lang,
            "audience": notice.recipient.audience.value,
            "w": self._text.get_template(f"{lang}/_words.j2").module,
        }
        subject = one_line(_block(text, "subject", context), 200)
        tag = f"[#{notice.ticket_id}]"
        if notice.ticket_id and tag not in subject:  # a digest is about no one ticket
            subject = f"{tag} {subject}"
        body = _block(text, "body", context).strip() + "\n"
        chat = _block(text, "chat", context).strip() if "chat" in text.blocks else ""
        html = self._html.get_template(f"{lang}/{name}.html.j2").render(
            {**context, "title": subject, "w": self._html.get_template(f"{lang}/_words.j2").module}
        )
        return Rendered(subject=subject, text=body, html=html, chat=chat or f"{subject}\n{body}")


def _block(template: Template, name: str, context: dict[str, Any]) -> str:
    pieces: Iterable[str] = template.blocks[name](template.new_context(context))
    return "".join(pieces)


def build_email(
    notice: Notice,
    rendered: Rendered,
    *,
    sender: Address,
    message_id: str,
    now: datetime,
    cte: str = "8bit",
    html: bool = True,
) -> EmailMessage:
    """The mail: multipart text and HTML, from the support address, threaded, tagged.

    Automatic notices carry ``Auto-Submitted`` (``auto-replied`` for the acknowledgement, which
    answers the client's request; ``auto-generated`` for the others) and
    ``X-Auto-Response-Suppress: All`` (RFC 3834), so that other robots do not answer them.
    An engineer's relayed answer is a person's mail and carries neither. ``html=False`` makes
    a single text/plain mail.
    """
    recipient = notice.recipient
    msg = EmailMessage(policy=BUILD)
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = _address(recipient.name or "", recipient.address)
    msg["Reply-To"] = sender
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    if notice.references:
        msg["In-Reply-To"] = notice.references[-1]
        msg["References"] = " ".join(notice.references)
    if notice.automatic:
        replied = notice.trigger.value == "acknowledgement"
        msg["Auto-Submitted"] = "auto-replied" if replied else "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
    if notice.ticket_id:
        msg["X-Opora-Ticket"] = notice.ticket_id
    msg["X-Opora-Trigger"] = notice.trigger.value
    msg.set_content(rendered.text, cte=cte)
    if html:
        msg.add_alternative(rendered.html, subtype="html", cte=cte)
        if BOUNDARY not in rendered.text and BOUNDARY not in rendered.html:
            msg.set_boundary(BOUNDARY)
    return msg


@lru_cache(maxsize=4096)
def _address(name: str, address: str) -> Address:
    """A recipient's address (parsing one costs 50 us, and recipients repeat)."""
    return Address(display_name=name, addr_spec=address)


BOUNDARY = "=_opora-alternative_="
"""The boundary between a notification's text and HTML parts, the same on every mail.

Without one the generator draws a random boundary for each mail, checks the parts for it and
writes a ``Content-Type`` too long for a line, parsed and folded anew every time (0.3 ms a
mail). A boundary must not occur in the parts; ``=_`` cannot occur in quoted-printable or
base64, and a part that contains it verbatim gets the generator's random boundary instead.
"""
