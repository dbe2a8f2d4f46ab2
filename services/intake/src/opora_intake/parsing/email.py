"""Raw RFC 5322 mail to a clean, structured ``ParsedEmail``: the intake's email normaliser. Pure.

The SMTP and IMAP intake hand the bytes they received to ``parse_email``; it decodes headers
(RFC 2047, raw 8-bit), every body charset (declared, mislabeled, undeclared or unknown), picks
the body (text/plain when it is real text, else the HTML converted), cuts quoted history,
collects attachments with sanitised names and sniffed types, and says whether a machine wrote
the mail (auto-reply, bulk, bounce) and which ticket the subject refers to.

It never raises, whatever the bytes: a part it cannot decode is kept as an attachment and noted
in ``charset_problems``. It does no I/O, reads no clock and touches no network.

Structure comes from the stdlib ``email`` package with ``policy.default`` (guarded against
oversized structured headers, which its parser handles in quadratic time); header values are
read raw and decoded here (faster, and tolerant of what the modern header parser rejects). When
the stdlib parser itself fails on a message, it is parsed again with ``policy.compat32``.
charset-normalizer is asked only when a declared charset does not fit and the quick
windows-1251 / KOI8-R / CP866 / windows-1252 scoring cannot tell.
"""

import binascii
import codecs
import email
import email.parser
import mimetypes
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.generator import BytesGenerator
from email.message import Message
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from io import BytesIO
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote_to_bytes

from opora_intake.parsing.automatic import automatic_reason, bounce_reason
from opora_intake.parsing.html import html_to_text
from opora_intake.parsing.quotes import strip_quotes
from opora_intake.parsing.ticket_ref import is_forward, strip_subject_prefixes, ticket_ref

__all__ = [
    "Attachment",
    "ParsedEmail",
    "content_type_of",
    "parse_email",
    "sanitize_filename",
    "strip_subject_prefixes",
    "to_json",
]

MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
#: Parts beyond this many are not read (a mail with thousands of parts is an attack or a bug).
MAX_PARTS = 500
MAX_DEPTH = 30
#: Header values longer than this are cut before decoding.
MAX_HEADER_CHARS = 32_768
#: Structured header values (Content-Type...) longer than this are cut before parsing.
MAX_STRUCTURED_HEADER_CHARS = 8_192
MAX_FILENAME_CHARS = 200
_SAMPLE = 4096


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with the mail (or a body part that could not be decoded)."""

    filename: str
    """Sanitised: no path, no control characters, at most 200 characters; generated if none."""
    content_type: str
    """Sniffed from the bytes where the declared type is generic or wrong."""
    size: int
    data: bytes = field(repr=False)
    inline: bool = False
    content_id: str | None = None
    """Without angle brackets, as an HTML ``cid:`` reference names it."""


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    """One mail, normalised: addresses, decoded subject, the new text, attachments, flags."""

    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    from_address: str | None
    from_name: str | None
    reply_to: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    date: datetime | None
    text: str
    """The new text only: quoted history, header blocks, signature and mobile footer cut."""
    full_text: str
    """The whole decoded body text, before any cutting."""
    from_html: bool
    is_automatic: bool
    automatic_reason: str | None
    is_bounce: bool
    bounced_message_id: str | None
    ticket_ref: str | None
    attachments: tuple[Attachment, ...]
    charset_problems: tuple[str, ...]
    """Human-readable notes; "part N" counts MIME parts in walk order, the message being 1."""
    problems: tuple[str, ...] = ()
    """Other things worth knowing: dropped oversize attachments, parts not read, lenient parse."""
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """A few decoded header values (Auto-Submitted, Precedence, List-Id, Return-Path, ...)."""


# -- charsets ---------------------------------------------------------------------------------

_ALIASES = {
    "koi8r": "koi8-r", "koi-8-r": "koi8-r", "koi8": "koi8-r", "x-koi8-r": "koi8-r",
    "koi-8": "koi8-r", "koi8u": "koi8-u", "koi-8-u": "koi8-u", "x-koi8-u": "koi8-u",
    "unicode-1-1-utf-7": "utf-7", "unicode-1-1-utf-8": "utf-8", "x-unicode20utf8": "utf-8",
    "utf8": "utf-8", "x-utf8": "utf-8", "x-utf-8": "utf-8",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "ksc5601": "cp949", "euc-kr": "cp949",
    "x-windows-949": "cp949", "iso-8859-8-i": "iso8859-8", "iso-8859-6-i": "iso8859-6",
    "x-mac-cyrillic": "mac-cyrillic", "x-mac-ukrainian": "mac-cyrillic",
    "maccyrillic": "mac-cyrillic",
    "ibm866": "cp866", "x-ibm866": "cp866", "dos-866": "cp866", "alt": "cp866",
    "x-sjis": "cp932", "sjis": "cp932", "shift-jis": "cp932", "shift_jis": "cp932",
    "windows-31j": "cp932", "ms_kanji": "cp932", "x-euc-jp": "euc-jp",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "euc-cn": "gb18030",
    "x-euc-cn": "gb18030", "chinese": "gb18030", "cp936": "gb18030",
    "big5": "big5hkscs", "x-big5": "big5hkscs", "big-5": "big5hkscs",
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "l1": "cp1252", "iso_8859-1": "cp1252", "iso-ir-100": "cp1252", "ibm819": "cp1252",
    "cp819": "cp1252", "x-iso-8859-1": "cp1252",
    "us-ascii": "ascii", "ascii": "ascii", "ansi_x3.4-1968": "ascii", "iso646-us": "ascii",
    "us": "ascii", "646": "ascii", "x-us-ascii": "ascii",
}  # fmt: skip
# Labels that name no charset at all: treated as unknown (kept as attachment, noted).
_UNKNOWN_LABELS = frozenset(
    {"x-unknown", "unknown", "unknown-8bit", "x-user-defined", "default", "none", "charset"}
)
_WINDOWS_CP = re.compile(r"^(?:x-)?(?:windows|win|cp|ms|ansi|ibm)[-_ ]?(\d{3,4})$")
# Codecs that are not charsets a mail can be written in.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem",
     "unicode-internal", "charmap"}
)  # fmt: skip
# Codecs where ASCII bytes do not mean ASCII text.
_NOT_ASCII_COMPATIBLE = frozenset(
    {"utf-7", "utf-16", "utf-16-be", "utf-16-le", "utf-32", "utf-32-be", "utf-32-le",
     "iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3",
     "iso2022_jp_ext", "iso2022_kr", "hz"}
)  # fmt: skip
_CYRILLIC_SINGLE = ("cp1251", "koi8-r", "koi8-u", "cp866", "iso8859-5", "mac-cyrillic")
_LATIN_SINGLE = ("cp1252", "iso8859-15", "iso8859-2", "cp1250", "iso8859-1", "latin-1")
_SINGLE_BYTE = frozenset(_CYRILLIC_SINGLE + _LATIN_SINGLE)
_GUESSES = ("cp1251", "koi8-r", "cp1252", "cp866")
# What a statistical guess may answer: charsets real mail is written in (not utf-16, cp1006...).
_DETECTABLE = frozenset(
    {"utf-8", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257",
     "cp1258", "koi8-r", "koi8-u", "cp866", "mac-cyrillic", "iso8859-2", "iso8859-5",
     "iso8859-7", "iso8859-9", "iso8859-15", "gb18030", "big5hkscs", "cp932", "euc_jp",
     "cp949", "iso2022_jp", "cp874", "tis-620"}
)  # fmt: skip
_LABEL = {"cp1251": "windows-1251", "cp1252": "windows-1252", "cp1250": "windows-1250"}
_CODEC_CACHE: dict[str, str | None] = {}
_ASCII_BYTES = bytes(range(128))

# Russian letter frequencies (percent), to tell windows-1251 from KOI8-R from CP866.
_RU_FREQ = {
    "о": 10.97, "е": 8.45, "а": 8.01, "и": 7.35, "н": 6.70, "т": 6.26, "с": 5.47, "р": 4.73,
    "в": 4.54, "л": 4.40, "к": 3.49, "м": 3.21, "д": 2.98, "п": 2.81, "у": 2.62, "я": 2.01,
    "ы": 1.90, "ь": 1.74, "г": 1.70, "з": 1.65, "б": 1.59, "ч": 1.44, "й": 1.21, "х": 0.97,
    "ж": 0.94, "ш": 0.73, "ю": 0.64, "ц": 0.48, "щ": 0.36, "э": 0.32, "ф": 0.26, "ъ": 0.04,
    "ё": 0.20, "і": 3.0, "ї": 0.6, "є": 0.4, "ґ": 0.1,
}  # fmt: skip
_WORD = re.compile(r"[^\W\d_]{2,}")
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")
_CYR_UPPER = re.compile("[А-ЯЁ]")
_CYR_LOWER = re.compile("[а-яё]")
_LATIN_HIGH_RUN = re.compile("[\u00c0-\u00ff]{4,}")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([\w.:-]{2,40})""", re.I)


def _codec(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when it names no usable charset."""
    if not label:
        return None
    key = label.strip().strip("\"'").split("*", 1)[0].strip().lower()
    if key in _CODEC_CACHE:
        return _CODEC_CACHE[key]
    result: str | None = None
    if key and key not in _UNKNOWN_LABELS and len(key) <= 40:
        name = _ALIASES.get(key, key)
        windows = _WINDOWS_CP.match(name)
        if windows:
            name = "cp" + windows.group(1)
        for candidate in (name, name.removeprefix("x-"), name.replace("_", "-")):
            try:
                info = codecs.lookup(candidate)
            except (LookupError, ValueError):
                continue
            if getattr(info, "_is_text_encoding", True) and info.name not in _NOT_CHARSETS:
                result = _ALIASES.get(info.name, info.name)
            break
    if len(_CODEC_CACHE) < 1024:
        _CODEC_CACHE[key] = result
    return result


def _label(codec: str) -> str:
    return _LABEL.get(codec, codec)


def _high_bytes(data: bytes) -> int:
    return len(data.translate(None, _ASCII_BYTES))


def _score(text: str) -> float:
    """How much ``text`` reads like real words: high for Russian or Latin, low for mojibake."""
    good = 0.0
    bad = len(_CONTROL_CHARS.findall(text)) * 2.0 + text.count("\ufffd") * 5.0
    for word in _WORD.findall(text):
        if word.isascii():
            continue
        size = len(word)
        cyrillic = sum(1 for ch in word if "\u0400" <= ch <= "\u04ff")
        if cyrillic == size:
            lower = word.lower()
            if word == lower or word.isupper() or word[1:] == lower[1:]:
                frequency = sum(_RU_FREQ.get(ch, 1.0) for ch in lower) / size
                good += size * (frequency - 3.0)
            else:
                bad += size
        elif cyrillic == 0 and sum(1 for ch in word if ord(ch) > 0x7F) * 3 <= size:
            good += size
        else:
            bad += size
    return good - 2.0 * bad


def _guess_single_byte(data: bytes, candidates: Iterable[str]) -> str | None:
    """The single-byte charset under which ``data`` reads best, or None when none reads well.

    Bytes that form no letters at all (``©``, ``®``, ``°``) read the same in every candidate;
    they are taken as windows-1252 when that decodes them.
    """
    sample = data[:_SAMPLE]
    best: str | None = None
    best_score = 0.0
    any_signal = False
    seen: set[str] = set()
    for codec in candidates:
        if codec in seen or codec not in _SINGLE_BYTE:
            continue
        seen.add(codec)
        score = _score(sample.decode(codec, "replace"))
        any_signal = any_signal or score != 0.0
        if score > best_score:
            best, best_score = codec, score
    if best is None and not any_signal:
        try:
            sample.decode("cp1252")
        except UnicodeDecodeError:
            return None
        return "cp1252"
    return best


def _detect(data: bytes, hints: Sequence[str], *, short: bool = False) -> str | None:
    """Guess the charset of undeclared or mislabeled bytes; None when they are not text.

    ``short`` (header fragments): no statistical detector, it cannot judge a few bytes.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    if b"\x1b$" in data or b"\x1b(" in data:
        for codec in ("iso2022_jp", "iso2022_jp_2", "iso2022_kr"):
            try:
                data.decode(codec)
            except UnicodeDecodeError:
                continue
            return codec
    head = data[:65536]
    high = _high_bytes(head)
    invalid = head.decode("utf-8", "replace").count("\ufffd") - head.count(b"\xef\xbf\xbd")
    if high and invalid * 10 <= high:
        return "utf-8"  # UTF-8 with a few stray bytes
    guess = _guess_single_byte(data, (*hints, *_GUESSES))
    if guess:
        return guess
    for codec in hints:
        if codec not in _SINGLE_BYTE and codec not in ("utf-8", "ascii"):
            try:
                data.decode(codec)
            except (UnicodeDecodeError, LookupError):
                continue
            return codec
    return None if short else _normalizer_guess(data)


def _normalizer_guess(data: bytes) -> str | None:
    """Ask charset-normalizer (slow, so only when the quick guesses gave up)."""
    if len(data) < 32:
        return None
    try:
        from charset_normalizer import from_bytes  # imported on first need: it is slow to load

        best = from_bytes(data[:65536]).best()
    except Exception:  # a detector failure is just "unknown"
        return None
    codec = _codec(best.encoding) if best is not None else None
    return codec if codec in _DETECTABLE else None


def _recheck(text: str, data: bytes, codec: str, hints: Sequence[str]) -> str | None:
    """Another charset when text decoded cleanly as ``codec`` still looks mislabeled."""
    sample = text[:_SAMPLE]
    if codec in _CYRILLIC_SINGLE:
        upper = len(_CYR_UPPER.findall(sample))
        lower = len(_CYR_LOWER.findall(sample))
        if upper + lower < 8 or upper <= lower:
            return None
        candidates: tuple[str, ...] = (codec, *_CYRILLIC_SINGLE[:3])
    elif codec in _LATIN_SINGLE:
        if len(_LATIN_HIGH_RUN.findall(sample)) < 2:
            return None
        candidates = (codec, *hints, "cp1251", "koi8-r")
    else:
        return None
    guess = _guess_single_byte(data, candidates)
    return guess if guess and guess != codec else None


@dataclass(slots=True)
class _Decoded:
    text: str
    charset: str
    problem: str | None = None
    broken: bool = False


def _ascii_fast(data: bytes, codec: str | None) -> bool:
    return (codec is None or codec not in _NOT_ASCII_COMPATIBLE) and data.isascii()


def _decode_text(data: bytes, declared: str | None, hints: Sequence[str]) -> _Decoded:
    """Decode a text body: declared charset when it fits, detection when it does not."""
    codec = _codec(declared)
    if _ascii_fast(data, codec):
        return _Decoded(data.decode("ascii"), "us-ascii")
    if declared and codec is None:
        label = declared.strip()[:40]
        guess = _detect(data, hints)
        if guess is None:
            return _Decoded(
                data.decode("utf-8", "replace"),
                "utf-8",
                f"declared charset {label!r} unknown and undecodable, kept as attachment",
                broken=True,
            )
        return _Decoded(
            data.decode(guess, "replace"),
            guess,
            f"declared charset {label!r} unknown, decoded as {_label(guess)}, kept as attachment",
            broken=True,
        )
    if codec is None or codec == "ascii":
        guess = _detect(data, hints)
        what = "undeclared 8-bit text" if codec is None else "8-bit text declared us-ascii"
        if guess is None:
            return _Decoded(
                data.decode("utf-8", "replace"),
                "utf-8",
                f"{what}, undecodable, kept as attachment",
                broken=True,
            )
        problem = (
            None if guess == "utf-8" and codec is None else f"{what}, decoded as {_label(guess)}"
        )
        return _Decoded(data.decode(guess, "replace"), guess, problem)
    if codec in _SINGLE_BYTE:
        try:
            return _Decoded(
                data.decode("utf-8"),
                "utf-8",
                f"declared charset {_label(codec)!r} but the text is utf-8",
            )
        except UnicodeDecodeError:
            pass
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        if codec == "cp1252":  # iso-8859-1 labels: the C1 bytes cp1252 leaves undefined
            text = data.decode("latin-1")
        else:
            guess = _detect(data, hints)
            if guess is not None and guess != codec:
                return _Decoded(
                    data.decode(guess, "replace"),
                    guess,
                    f"invalid bytes for declared charset {_label(codec)!r}, decoded as "
                    f"{_label(guess)}, kept as attachment",
                    broken=True,
                )
            return _Decoded(
                data.decode(codec, "replace"),
                codec,
                f"invalid bytes for declared charset {_label(codec)!r}, decoded with "
                "replacements, kept as attachment",
                broken=True,
            )
    except Exception:  # a codec that misbehaves on odd input
        return _Decoded(
            data.decode("utf-8", "replace"),
            "utf-8",
            f"declared charset {_label(codec)!r} failed, kept as attachment",
            broken=True,
        )
    better = _recheck(text, data, codec, hints)
    if better:
        return _Decoded(
            data.decode(better, "replace"),
            better,
            f"declared charset {_label(codec)!r} but the text reads as {_label(better)}",
        )
    return _Decoded(text, codec)


# -- header values ----------------------------------------------------------------------------

_FOLD = re.compile(r"\r?\n(?=[ \t])|\r(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*)\?=")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_WHITESPACE = re.compile(r"\s+")
_HEADER_CONTROL = re.compile("[\x00-\x1f\x7f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _unfold(value: str) -> str:
    return _FOLD.sub("", value[:MAX_HEADER_CHARS])


def _b_decode(payload: str) -> bytes:
    data = _B64_JUNK.sub(b"", payload.encode("utf-8", "surrogateescape"))
    if len(data) % 4 == 1:
        data = data[:-1]
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return b""


def _q_decode(payload: str) -> bytes:
    return binascii.a2b_qp(payload.encode("utf-8", "surrogateescape"), header=True)


class _Context:
    """What one parse collects on the way: charset hints, problems."""

    def __init__(self) -> None:
        self.hints: list[str] = []
        self.charset_problems: list[str] = []
        self.problems: list[str] = []
        self.broken_parts: set[int] = set()

    def hint(self, codec: str | None) -> None:
        if codec and codec not in ("ascii", "utf-8") and codec not in self.hints:
            self.hints.append(codec)

    def decode_raw(self, text: str, where: str) -> str:
        """Header text that may carry raw 8-bit bytes (as surrogates) to str."""
        if text.isascii():
            return text
        data = text.encode("utf-8", "surrogateescape")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        guess = _detect(data, self.hints, short=True) or "utf-8"
        self.charset_problems.append(f"{where}: raw 8-bit bytes, decoded as {_label(guess)}")
        return data.decode(guess, "replace")

    def decode_word_bytes(self, data: bytes, charset: str, where: str) -> str:
        """The bytes of one or more adjacent encoded-words in their declared charset."""
        codec = _codec(charset)
        if codec is not None:
            if codec == "ascii" and not data.isascii():
                codec = None
            else:
                try:
                    return data.decode(codec)
                except UnicodeDecodeError:
                    pass
                except Exception:  # misbehaving codec
                    codec = None
        if data.isascii():
            return data.decode("ascii")
        guess = _detect(data, self.hints, short=True) or "utf-8"
        label = charset[:40]
        if codec is None:
            note = f"{where}: charset {label!r} unknown, decoded as {_label(guess)}"
        else:
            note = f"{where}: invalid bytes for charset {label!r}, decoded as {_label(guess)}"
        self.charset_problems.append(note)
        return data.decode(guess, "replace")

    def decode_header(self, value: str, where: str) -> str:
        """An unfolded header value with RFC 2047 encoded-words and raw 8-bit decoded."""
        if "=?" not in value:
            return self.decode_raw(value, where)
        out: list[str] = []
        pending = bytearray()
        pending_charset: str | None = None
        position = 0

        def flush() -> None:
            nonlocal pending_charset
            if pending_charset is not None:
                out.append(self.decode_word_bytes(bytes(pending), pending_charset, where))
                pending.clear()
                pending_charset = None

        for match in _ENCODED_WORD.finditer(value):
            between = value[position : match.start()]
            if between and not (pending_charset is not None and between.isspace()):
                flush()
                out.append(self.decode_raw(between, where))
            charset = match.group(1).split("*", 1)[0].lower()
            payload = match.group(3)
            data = _b_decode(payload) if match.group(2) in "bB" else _q_decode(payload)
            if pending_charset is not None and charset != pending_charset:
                flush()
            pending_charset = charset
            pending.extend(data)
            position = match.end()
        flush()
        out.append(self.decode_raw(value[position:], where))
        return "".join(out)

    def header_text(self, value: str | None, where: str) -> str:
        """A decoded header value with control characters removed and whitespace folded."""
        if not value:
            return ""
        decoded = self.decode_header(_unfold(value), where)
        return _WHITESPACE.sub(" ", _HEADER_CONTROL.sub(" ", decoded)).strip()


# -- parameters (Content-Type, Content-Disposition) -------------------------------------------

_RFC2231_NAME = re.compile(r"^(?P<name>[^*]+)(?:\*(?P<index>\d+))?(?P<encoded>\*)?$")
_CHARSET_IN_WORDS = re.compile(r"charset\s*=\s*[\"']?([\w.:-]{2,40})", re.IGNORECASE)


def _split_semicolons(value: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    if value.startswith('"'):
        return value[1:]
    return value


def _params(raw: str | None, ctx: _Context, where: str) -> tuple[str, dict[str, str]]:
    """A structured header's main value (lower-case) and its parameters, fully decoded."""
    if not raw:
        return "", {}
    value = _unfold(raw)[:8192]
    pieces = _split_semicolons(value)
    main = pieces[0].strip().lower()
    params: dict[str, str] = {}
    continued: dict[str, list[tuple[int, str, bool]]] = {}
    for piece in pieces[1:]:
        name, sep, val = piece.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            continue
        match = _RFC2231_NAME.match(name)
        if match and (match.group("index") is not None or match.group("encoded")):
            index = int(match.group("index") or 0)
            continued.setdefault(match.group("name"), []).append(
                (index, _unquote(val), bool(match.group("encoded")))
            )
        elif name not in params:
            params[name] = _unquote(val)
    for name, segments in continued.items():
        segments.sort(key=lambda segment: segment[0])
        charset = ""
        data = bytearray()
        for position, (_, text, encoded) in enumerate(segments):
            if encoded:
                if position == 0 and text.count("'") >= 2:
                    charset, _, text = text.split("'", 2)
                data.extend(unquote_to_bytes(text.encode("utf-8", "surrogateescape")))
            else:
                data.extend(text.encode("utf-8", "surrogateescape"))
        if charset:
            params[name] = ctx.decode_word_bytes(bytes(data), charset, where)
        else:
            params[name] = ctx.decode_raw(data.decode("utf-8", "surrogateescape"), where)
    for name, text in params.items():
        if "=?" in text or not text.isascii():
            params[name] = ctx.header_text(text, where)
    if "charset" not in params and "=?" in value:
        # A charset parameter hidden inside an encoded-word (seen from old Outlook versions).
        hidden = _CHARSET_IN_WORDS.search(ctx.decode_header(value, where))
        if hidden:
            params["charset"] = hidden.group(1)
    return main, params


# -- addresses, ids, dates --------------------------------------------------------------------

_SIMPLE_ADDRESS = re.compile(
    r'^\s*(?:(?:"(?P<name>[^"\\]{0,200})"|(?P<atom>[\w .\'-]{0,200}?))\s*'
    r"<(?P<angle>[\w.+\'-]{1,64}@[\w.-]{1,255})>"
    r"|(?P<bare>[\w.+\'-]{1,64}@[\w.-]{1,255}))\s*$"
)
_PLACEHOLDER = "\x00{}\x00"
_PLACEHOLDER_RE = re.compile("\x00(\\d+)\x00")
_MESSAGE_ID = re.compile(r"<([^<>\s]{1,900})>")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=\s]")


def _addresses(value: str | None, ctx: _Context, where: str) -> list[tuple[str, str]]:
    """(display name, lower-case addr-spec) pairs; encoded names decoded, junk dropped."""
    if not value:
        return []
    text = _unfold(value).replace("\r", " ").replace("\n", " ")
    simple = _SIMPLE_ADDRESS.match(text) if text.isascii() and "=?" not in text else None
    if simple:  # the common one-address form, without the full address parser
        name = (simple.group("name") or simple.group("atom") or "").strip()
        address = (simple.group("angle") or simple.group("bare") or "").lower()
        return [(name, address)]
    words: list[str] = []
    if "=?" in text:
        # Encoded-words may hide commas or quotes: shield them from the address parser.
        def shield(match: re.Match[str]) -> str:
            words.append(match.group(0))
            return _PLACEHOLDER.format(len(words) - 1)

        text = _ENCODED_WORD.sub(shield, text)
    try:
        pairs = getaddresses([text])
    except Exception:  # the compat parser can fail on odd input
        pairs = []
    result: list[tuple[str, str]] = []
    for name, address in pairs:
        if words:
            name = _PLACEHOLDER_RE.sub(lambda m: words[int(m.group(1))], name)
            address = _PLACEHOLDER_RE.sub(lambda m: words[int(m.group(1))], address)
        address = ctx.decode_raw(address, where).strip().strip("<>").strip()
        if "@" not in address or any(ch.isspace() for ch in address) or len(address) > 320:
            continue
        result.append((ctx.header_text(name, where), address.lower()))
    return result


def _message_id(value: str | None) -> str | None:
    """A Message-ID in its ``<...>`` form, tolerant of missing brackets."""
    if not value:
        return None
    text = _unfold(value)
    match = _MESSAGE_ID.search(text)
    if match:
        return f"<{match.group(1)}>"
    tokens = text.replace("<", " ").replace(">", " ").split()
    return f"<{tokens[0][:900]}>" if tokens and tokens[0].isascii() else None


def _message_ids(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    text = _unfold(value)
    found = [f"<{m}>" for m in _MESSAGE_ID.findall(text)]
    if not found:
        found = [f"<{t}>" for t in text.split() if "@" in t and t.isascii()]
    return tuple(dict.fromkeys(found))[:100]


def _date(value: str | None) -> datetime | None:
    """The Date header as an aware datetime (UTC when the zone is unknown), None if invalid."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(_unfold(value).strip())
    except Exception:  # invalid dates are common and harmless
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# -- attachments ------------------------------------------------------------------------------

_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "clock$", "conin$", "conout$"}
    | {f"com{i}" for i in range(10)}
    | {f"lpt{i}" for i in range(10)}
)
_UNSAFE_FILENAME_CHARS = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')
_GENERIC_TYPES = frozenset(
    {"", "application/octet-stream", "application/unknown", "application/x-unknown",
     "application/binary", "binary/octet-stream", "application/force-download",
     "application/x-download", "application/download", "application/x-msdownload-unknown",
     "unknown/unknown", "application/x-octet-stream"}
)  # fmt: skip
_OOXML = {
    b"word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    b"xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    b"ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_OLE_BY_EXTENSION = {
    "doc": "application/msword",
    "dot": "application/msword",
    "xls": "application/vnd.ms-excel",
    "xlt": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "pps": "application/vnd.ms-powerpoint",
    "msg": "application/vnd.ms-outlook",
    "vsd": "application/vnd.visio",
    "msi": "application/x-msi",
}
_EXECUTABLE = "application/vnd.microsoft.portable-executable"
_SNIFFABLE = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff", "image/webp",
     "application/pdf", "application/zip", "application/x-rar-compressed",
     "application/x-7z-compressed", "application/gzip", "application/x-ole-storage",
     "application/rtf", _EXECUTABLE, "application/x-executable", "application/x-msdownload",
     "application/x-dosexec", *_OOXML.values(), *_OLE_BY_EXTENSION.values()}
)  # fmt: skip
# Types that are never stored inside a zip or OLE container file.
_NOT_CONTAINED = re.compile(
    r"^(?:image/|audio/|video/|text/|application/(?:pdf|rtf|gzip|x-rar|x-7z|x-executable|"
    r"x-msdownload|x-dosexec|vnd\.microsoft\.portable-executable|zip$))"
)
_EXTENSIONS = {
    "text/plain": ".txt", "text/html": ".html", "image/jpeg": ".jpg", "image/png": ".png",
    "image/gif": ".gif", "application/pdf": ".pdf", "message/rfc822": ".eml",
    "message/global": ".eml", "message/delivery-status": ".txt", "text/calendar": ".ics",
    "application/zip": ".zip", _EXECUTABLE: ".exe", "application/octet-stream": ".bin",
    "text/rfc822-headers": ".txt", "message/disposition-notification": ".txt",
    "message/feedback-report": ".txt", "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s", "application/pkcs7-mime": ".p7m",
    "application/x-pkcs7-mime": ".p7m", "application/pgp-signature": ".asc",
    "application/ms-tnef": ".dat",
}  # fmt: skip
_TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
    "application/x-zip-compressed": "application/zip",
    "application/x-zip": "application/zip",
}


def sanitize_filename(name: str | None, fallback: str) -> str:
    """A file name safe to store and show: no path, no control or bidi characters, ≤ 200 chars."""
    if not name:
        return fallback
    name = unicodedata.normalize("NFC", name.encode("utf-8", "replace").decode("utf-8"))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
    )
    name = _UNSAFE_FILENAME_CHARS.sub("_", name)
    name = _WHITESPACE.sub(" ", name).strip(" .")
    if not name or set(name) <= {"_", "."}:
        return fallback
    if name.split(".", 1)[0].strip().lower() in _WINDOWS_RESERVED:
        name = "_" + name
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 16 and stem:
            name = stem[: MAX_FILENAME_CHARS - len(extension) - 1].rstrip(" .") + "." + extension
        else:
            name = name[:MAX_FILENAME_CHARS]
    return name


def _extension(filename: str) -> str:
    stem, dot, extension = filename.rpartition(".")
    return extension.lower() if dot and stem else ""


def _sniff(data: bytes, filename: str) -> str | None:
    """The content type the bytes' magic number says, or None when they say nothing."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"%PDF-") or b"%PDF-" in data[:1024]:
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        if data[30:38] == b"mimetype":
            odf = data[38:120].split(b"PK", 1)[0].decode("ascii", "replace").strip()
            if odf.startswith("application/"):
                return odf
        window = data[:65536] + data[-65536:]
        for prefix, ooxml in _OOXML.items():
            if prefix in window:
                return ooxml
        if b"META-INF/MANIFEST.MF" in window:
            return "application/java-archive"
        return "application/zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _OLE_BY_EXTENSION.get(_extension(filename), "application/x-ole-storage")
    if head.startswith(b"MZ") and len(data) >= 64:
        return _EXECUTABLE
    if head.startswith(b"\x7fELF"):
        return "application/x-executable"
    if head.startswith(b"Rar!\x1a\x07"):
        return "application/x-rar-compressed"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "application/x-7z-compressed"
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if head.startswith(b"{\\rtf"):
        return "application/rtf"
    if head.startswith(b"BM") and len(data) > 26 and data[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"\x78\x9f\x3e\x22"):
        return "application/ms-tnef"
    return None


def content_type_of(declared: str, data: bytes, filename: str) -> str:
    """The attachment's type: magic numbers first, the declared type next, the name last."""
    declared = _TYPE_ALIASES.get(declared, declared)
    sniffed = _sniff(data, filename)
    if sniffed is not None:
        if sniffed == declared:
            return declared
        container = sniffed in ("application/zip", "application/x-ole-storage")
        if container and declared not in _GENERIC_TYPES and not _NOT_CONTAINED.match(declared):
            return declared  # a zip- or OLE-based format named more precisely (xls, odt, vsdx)
        return sniffed
    if declared in _GENERIC_TYPES:
        guessed, _ = mimetypes.guess_type(filename, strict=False)
        # The name alone never makes a file a PDF or an image: their bytes would show it.
        if (
            guessed
            and guessed not in _SNIFFABLE
            and (not guessed.startswith("text/") or b"\x00" not in data[:1024])
        ):
            return guessed
        return "application/octet-stream"
    if declared in _SNIFFABLE:
        return "application/octet-stream"  # claims a type whose magic number is missing
    return declared


# -- structure --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    index: int
    part: Message
    ctype: str
    params: dict[str, str]
    disposition: str
    dparams: dict[str, str]
    children: list["_Node"] | None
    content_id: str | None = None
    transfer_encoding: str = ""


def _raw_headers(part: Message) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for count, (name, value) in enumerate(part.raw_items()):
        if count >= 1000:
            break
        headers.setdefault(str(name).strip().lower(), []).append(str(value))
    return headers


def _first(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _content_type(
    raw: str | None, default: str, ctx: _Context, where: str
) -> tuple[str, dict[str, str]]:
    main, params = _params(raw, ctx, where)
    main = main.replace(" ", "")
    if not main:
        return default, params
    if main.count("/") != 1:
        return "text/plain", params
    return main, params


def _build_tree(message: Message, ctx: _Context) -> _Node:
    root: _Node | None = None
    count = 0
    stack: list[tuple[Message, int, _Node | None]] = [(message, 0, None)]
    while stack:
        part, depth, parent = stack.pop()
        count += 1
        if count > MAX_PARTS:
            ctx.problems.append(f"more than {MAX_PARTS} MIME parts; the rest were not read")
            break
        headers = _raw_headers(part)
        where = f"part {count}"
        ctype, params = _content_type(
            _first(headers, "content-type"), part.get_default_type(), ctx, where
        )
        disposition, dparams = _params(_first(headers, "content-disposition"), ctx, where)
        cid = _first(headers, "content-id")
        container = part.is_multipart() and not ctype.startswith("message/") and depth < MAX_DEPTH
        node = _Node(
            index=count,
            part=part,
            ctype=ctype,
            params=params,
            disposition=disposition.split()[0] if disposition else "",
            dparams=dparams,
            children=[] if container else None,
            content_id=_unfold(cid).strip().strip("<>").strip() or None if cid else None,
            transfer_encoding=(_first(headers, "content-transfer-encoding") or "").strip().lower(),
        )
        ctx.hint(_codec(params.get("charset")))
        if parent is None:
            root = node
        elif parent.children is not None:
            parent.children.append(node)
        if container:
            payload = part.get_payload()
            if isinstance(payload, list):
                for child in reversed(payload):
                    if isinstance(child, Message):
                        stack.append((child, depth + 1, node))
    assert root is not None  # noqa: S101 - the message itself is always the first node
    return root


def _as_str(value: object) -> str | None:
    return None if value is None else str(value)


def _payload_bytes(node: _Node) -> bytes:
    """The part's body with its transfer encoding undone (never raises)."""
    part = node.part
    try:
        if node.transfer_encoding == "base64" and node.ctype.startswith("text/"):
            raw = part.get_payload()
            if isinstance(raw, str) and len(_NOT_BASE64.findall(raw[:4096])) > 16:
                return raw.encode("utf-8", "surrogateescape")  # declared base64, plainly not
        data = part.get_payload(decode=True)
    except Exception:  # fall back to the undecoded payload
        data = None
    if isinstance(data, bytes):
        return data
    try:
        raw = part.get_payload()
    except Exception:
        return b""
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _encoded_size(node: _Node) -> int | None:
    """Roughly how many bytes a base64 or quoted-printable part decodes to, before decoding."""
    if node.transfer_encoding not in ("base64", "quoted-printable"):
        return None
    try:
        raw = node.part.get_payload()
    except Exception:
        return None
    return len(raw) * 3 // 4 if isinstance(raw, str) else None


# Serialise embedded messages with their header lines as received (no refolding, no re-parse).
_MESSAGE_POLICY: Any = policy.default.clone(refold_source="none", max_line_length=0)


def _message_bytes(part: Message) -> bytes:
    """An embedded message (message/rfc822, delivery-status) as bytes, headers unchanged."""
    payload = part.get_payload()
    target = payload[0] if isinstance(payload, list) and len(payload) == 1 else part
    if isinstance(payload, list) and len(payload) > 1:  # delivery-status: header blocks
        chunks = [_message_bytes_of(block) for block in payload if isinstance(block, Message)]
        return b"\n".join(chunks)
    if isinstance(payload, str):
        return _payload_bytes_plain(part)
    return _message_bytes_of(target) if isinstance(target, Message) else b""


def _count_parts(message: Message, limit: int) -> int:
    """How many parts ``message`` has, counting no further than ``limit + 1``."""
    count = 0
    for _ in message.walk():
        count += 1
        if count > limit:
            break
    return count


def _message_bytes_of(message: Message) -> bytes:
    buffer = BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=_MESSAGE_POLICY).flatten(message)
    except Exception:  # fall back to the compat serialiser
        try:
            return message.as_string(policy=policy.compat32).encode("utf-8", "surrogateescape")
        except Exception:
            return b""
    return buffer.getvalue()


def _payload_bytes_plain(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    return data if isinstance(data, bytes) else b""


# -- body selection ---------------------------------------------------------------------------

_HTML_PLACEHOLDER = re.compile(
    r"html|your\s+(?:mail|e-?mail)\s+(?:client|program|reader)|view\s+(?:this|it)\s+(?:message|email)"
    r"|browser|сообщени\w+\s+в\s+формате|формат\w*\s+html|почтов\w+\s+(?:клиент|программ)"
    r"|открой\w*\s+в\s+браузере",
    re.IGNORECASE,
)
_NEWLINES = re.compile(r"\r\n?")
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff]")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


def _is_body_leaf(node: _Node) -> bool:
    if node.children is not None or node.disposition == "attachment":
        return False
    if node.dparams.get("filename") or node.params.get("name"):
        return False
    return node.ctype in ("text/plain", "text/html") or node.ctype.startswith("multipart/")


def _unflow(text: str, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed soft line breaks."""
    out: list[str] = []
    buffer: str | None = None
    buffer_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        if buffer is not None and depth == buffer_depth:
            buffer += content
        else:
            if buffer is not None:
                out.append(">" * buffer_depth + (" " if buffer_depth else "") + buffer)
            buffer, buffer_depth = content, depth
        if not flowed:
            out.append(">" * depth + (" " if depth else "") + buffer)
            buffer = None
    if buffer is not None:
        out.append(">" * buffer_depth + (" " if buffer_depth else "") + buffer)
    return "\n".join(out)


class _Bodies:
    """Decodes text leaves on demand and chooses which of them make the body."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.texts: dict[int, str] = {}
        self.discarded: set[int] = set()

    def text(self, node: _Node) -> str:
        cached = self.texts.get(node.index)
        if cached is not None:
            return cached
        data = _payload_bytes(node)
        declared = node.params.get("charset")
        is_html = node.ctype == "text/html"
        if is_html and not _codec(declared):
            meta = _META_CHARSET.search(data[:4096])
            if meta and _codec(meta.group(1).decode("ascii", "replace")):
                declared = meta.group(1).decode("ascii")
        decoded = _decode_text(data, declared, self.ctx.hints)
        if decoded.problem:
            self.ctx.charset_problems.append(f"part {node.index}: {decoded.problem}")
        if decoded.broken:
            self.ctx.broken_parts.add(node.index)
        self.ctx.hint(decoded.charset)
        text = _TEXT_CONTROL.sub("", _NEWLINES.sub("\n", decoded.text))
        if is_html:
            text = html_to_text(text)
        elif node.params.get("format", "").lower() == "flowed":
            text = _unflow(text, node.params.get("delsp", "").lower() == "yes")
        text = _BLANK_RUNS.sub("\n\n", _TRAILING_SPACE.sub("", text)).strip("\n")
        self.texts[node.index] = text
        return text

    def is_real_text(self, leaves: list[_Node]) -> bool:
        """Plain text that says something (not empty, not "this is an HTML message")."""
        text = "\n".join(self.text(leaf) for leaf in leaves).strip()
        if not text:
            return False
        return not (len(text) < 300 and _HTML_PLACEHOLDER.search(text))

    def select(self, node: _Node, depth: int = 0) -> list[_Node]:
        """The leaves that make the body of ``node``, in reading order."""
        if node.children is None:
            return [node] if _is_body_leaf(node) else []
        if depth > MAX_DEPTH:
            return []
        subtype = node.ctype.partition("/")[2]
        children = node.children
        if subtype == "alternative":
            return self._alternative(children, depth)
        if subtype == "related":
            start = node.params.get("start", "").strip().strip("<>")
            root = next((c for c in children if start and c.content_id == start), None)
            return self.select(root or children[0], depth + 1) if children else []
        if subtype in ("signed", "encrypted", "report"):
            return self.select(children[0], depth + 1) if children else []
        chosen: list[_Node] = []
        for child in children:
            if child.children is None and not _is_body_leaf(child):
                continue
            chosen.extend(self.select(child, depth + 1))
        return chosen

    def _alternative(self, children: list[_Node], depth: int) -> list[_Node]:
        plain: list[_Node] = []
        html: list[_Node] = []
        options: list[list[_Node]] = []
        for child in children:
            leaves = self.select(child, depth + 1)
            if not leaves:
                continue
            options.append(leaves)
            if any(leaf.ctype == "text/html" for leaf in leaves):
                html = leaves  # the last HTML alternative is the richest
            elif not plain:
                plain = leaves
        if plain and self.is_real_text(plain):
            chosen = plain
        elif html:
            chosen = html
        else:
            chosen = plain or (options[-1] if options else [])
        for leaves in options:
            if leaves is not chosen:
                self.discarded.update(leaf.index for leaf in leaves)
        return chosen


def _leaves(node: _Node) -> Iterable[_Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.children is None:
            yield current
        else:
            stack.extend(reversed(current.children))


# -- bounces ----------------------------------------------------------------------------------

_DELIVERY_STATUS = frozenset({"message/delivery-status", "message/global-delivery-status"})
_RETURNED = frozenset(
    {"message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers"}
)
_BODY_MESSAGE_ID = re.compile(r"^[ \t>]*message-id:[ \t]*(<[^<>\s]{1,900}>)", re.I | re.M)


def _bounced_message_id(root: _Node, bodies: _Bodies, body_text: str) -> str | None:
    """The Message-ID of the mail a bounce returns: embedded message, its headers, or the text."""
    for leaf in _leaves(root):
        if leaf.ctype not in _RETURNED:
            continue
        payload = leaf.part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            found = _message_id(_first(_raw_headers(inner), "message-id"))
            if found:
                return found
        else:
            text = _payload_bytes(leaf)[:65536].decode("utf-8", "replace")
            match = _BODY_MESSAGE_ID.search(_FOLD.sub("", text))
            if match:
                return match.group(1)
    match = _BODY_MESSAGE_ID.search(body_text[:200_000])
    if match:
        return match.group(1)
    for leaf in _leaves(root):
        if leaf.ctype == "text/plain" and leaf.index not in bodies.texts:
            match = _BODY_MESSAGE_ID.search(bodies.text(leaf)[:200_000])
            if match:
                return match.group(1)
    return None


# -- the parse --------------------------------------------------------------------------------

_KEPT_HEADERS = (
    "auto-submitted", "precedence", "list-id", "list-unsubscribe", "x-autoreply",
    "x-autorespond", "x-autoresponder", "x-autogenerated", "x-auto-response-suppress",
    "x-apple-action", "from", "return-path", "sender", "x-failed-recipients",
    "x-mailer-daemon-recipients", "x-priority", "importance", "x-mailer", "user-agent",
    "content-language",
)  # fmt: skip


class _GuardedPolicy(EmailPolicy):
    """``policy.default`` with one guard: header values are cut before the modern parser sees them.

    The modern parser is quadratic in the number of parameters: a 250 KB Content-Type header
    costs seconds. Real ones stay under 2 KB, even with long RFC 2231 file names.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        """Cut an oversized value (at a parameter boundary) before parsing it, and memoise.

        The parser asks for a part's Content-Type four or five times; header objects are
        immutable, so one parse per distinct value is enough. The memo lives for one mail
        (``_parse_structure`` clears it), so a benchmark that repeats mails gains nothing.
        """
        key = (name, value)
        cached = _HEADER_CACHE.get(key)
        if cached is not None:
            return cached
        if len(value) > MAX_STRUCTURED_HEADER_CHARS:
            cut = value.rfind(";", 0, MAX_STRUCTURED_HEADER_CHARS)
            value = value[: cut if cut > 0 else MAX_STRUCTURED_HEADER_CHARS]
        parsed = super().header_fetch_parse(name, value)
        if len(_HEADER_CACHE) < 1024:
            _HEADER_CACHE[key] = parsed
        return parsed


_HEADER_CACHE: dict[tuple[str, str], Any] = {}


_POLICY = _GuardedPolicy()


def _parse_structure(raw: bytes, ctx: _Context) -> Message:
    _HEADER_CACHE.clear()
    try:
        return email.message_from_bytes(raw, policy=_POLICY)
    except Exception as exc:  # the modern parser rejects some real mail
        ctx.problems.append(
            f"MIME structure: modern parser failed ({type(exc).__name__}), compat32 used"
        )
    try:
        return email.message_from_bytes(raw, policy=policy.compat32)
    except Exception as exc:  # e.g. nesting deeper than the recursion limit
        ctx.problems.append(f"MIME structure unreadable ({type(exc).__name__}), body kept as text")
    return email.parser.BytesHeaderParser(policy=policy.compat32).parsebytes(raw)


def _attachment(
    node: _Node, ctx: _Context, max_bytes: int, *, as_text_part: bool = False
) -> Attachment | None:
    is_message = node.ctype.startswith("message/") and not as_text_part
    estimate = None if is_message else _encoded_size(node)
    if estimate is not None and estimate > max_bytes * 11 // 10:
        ctx.problems.append(
            f"part {node.index}: attachment of about {estimate} bytes over the "
            f"{max_bytes}-byte limit, dropped"
        )
        return None
    if is_message and _count_parts(node.part, MAX_PARTS) > MAX_PARTS:
        ctx.problems.append(
            f"part {node.index}: embedded message with more than {MAX_PARTS} parts, not kept"
        )
        return None
    data = _message_bytes(node.part) if is_message else _payload_bytes(node)
    if len(data) > max_bytes:
        ctx.problems.append(
            f"part {node.index}: attachment of {len(data)} bytes over the {max_bytes}-byte "
            "limit, dropped"
        )
        return None
    raw_name = node.dparams.get("filename") or node.params.get("name")
    filename = sanitize_filename(raw_name, "")
    declared = node.ctype
    content_type = (
        declared if as_text_part or is_message else content_type_of(declared, data, filename)
    )
    if not filename:
        stem = "part" if as_text_part else ("message" if is_message else "attachment")
        extension = _EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type)
        filename = f"{stem}-{node.index}{extension or '.bin'}"
    inline = node.disposition == "inline" or (not node.disposition and node.content_id is not None)
    return Attachment(
        filename=filename,
        content_type=content_type,
        size=len(data),
        data=data,
        inline=inline and not as_text_part,
        content_id=node.content_id,
    )


def _parse(raw: bytes, max_attachment_bytes: int) -> ParsedEmail:
    ctx = _Context()
    message = _parse_structure(raw, ctx)
    headers = _raw_headers(message)
    root = _build_tree(message, ctx)

    bodies = _Bodies(ctx)
    body_leaves = bodies.select(root)
    texts = [bodies.text(leaf) for leaf in body_leaves]
    full_text = "\n\n".join(text for text in texts if text)
    from_html = any(leaf.ctype == "text/html" for leaf in body_leaves)
    body_ids = {leaf.index for leaf in body_leaves}

    def header(name: str) -> str | None:
        return _as_str(_first(headers, name))

    subject = ctx.header_text(header("subject"), "subject")
    senders = _addresses(header("from"), ctx, "from") or _addresses(header("sender"), ctx, "sender")
    from_name, from_address = senders[0] if senders else ("", None)
    reply_to = _addresses(header("reply-to"), ctx, "reply-to")
    kept = {name: ctx.header_text(header(name), name) for name in _KEPT_HEADERS if name in headers}

    attachments: list[Attachment] = []
    for leaf in _leaves(root):
        if leaf.index in body_ids:
            if leaf.index in ctx.broken_parts:
                kept_part = _attachment(leaf, ctx, max_attachment_bytes, as_text_part=True)
                if kept_part:
                    attachments.append(kept_part)
            continue
        if leaf.index in bodies.discarded:
            continue
        item = _attachment(leaf, ctx, max_attachment_bytes)
        if item is not None:
            attachments.append(item)

    report_type = (
        root.params.get("report-type", "").strip().lower()
        if root.ctype == "multipart/report"
        else None
    )
    has_delivery_status = any(leaf.ctype in _DELIVERY_STATUS for leaf in _leaves(root))
    bounce = bounce_reason(
        headers=kept,
        subject=subject,
        from_address=from_address,
        report_type=report_type,
        has_delivery_status=has_delivery_status,
        has_returned_message=any(leaf.ctype in _RETURNED for leaf in _leaves(root)),
    )
    reason = automatic_reason(
        headers=kept, subject=subject, is_bounce=bounce is not None, report_type=report_type
    )
    forward = is_forward(subject)
    return ParsedEmail(
        message_id=_message_id(header("message-id")),
        in_reply_to=_message_id(header("in-reply-to")),
        references=_message_ids(header("references")),
        from_address=from_address,
        from_name=from_name or None,
        reply_to=reply_to[0][1] if reply_to else None,
        to=tuple(dict.fromkeys(a for _, a in _addresses(header("to"), ctx, "to"))),
        cc=tuple(dict.fromkeys(a for _, a in _addresses(header("cc"), ctx, "cc"))),
        subject=subject,
        date=_date(header("date")),
        text=strip_quotes(full_text, forward=forward),
        full_text=full_text,
        from_html=from_html,
        is_automatic=reason is not None,
        automatic_reason=reason,
        is_bounce=bounce is not None,
        bounced_message_id=_bounced_message_id(root, bodies, full_text) if bounce else None,
        ticket_ref=ticket_ref(subject),
        attachments=tuple(attachments),
        charset_problems=tuple(dict.fromkeys(ctx.charset_problems)),
        problems=tuple(dict.fromkeys(ctx.problems)),
        headers=MappingProxyType(kept),
    )


def _unparseable(raw: bytes, exc: Exception) -> ParsedEmail:
    text = raw[:100_000].decode("utf-8", "replace")
    text = _TEXT_CONTROL.sub("", _NEWLINES.sub("\n", text)).strip()
    return ParsedEmail(
        message_id=None,
        in_reply_to=None,
        references=(),
        from_address=None,
        from_name=None,
        reply_to=None,
        to=(),
        cc=(),
        subject="",
        date=None,
        text=text,
        full_text=text,
        from_html=False,
        is_automatic=False,
        automatic_reason=None,
        is_bounce=False,
        bounced_message_id=None,
        ticket_ref=None,
        attachments=(),
        charset_problems=(),
        problems=(f"unparseable ({type(exc).__name__}); the raw bytes are the text",),
    )


def parse_email(raw: bytes, *, max_attachment_bytes: int = MAX_ATTACHMENT_BYTES) -> ParsedEmail:
    """Parse raw RFC 5322 bytes into a ``ParsedEmail``; never raises, whatever the input."""
    try:
        data = raw if isinstance(raw, bytes) else bytes(raw)
    except Exception as exc:  # not even bytes: an empty result says so
        return _unparseable(b"", exc)
    try:
        return _parse(data, max_attachment_bytes)
    except RecursionError as exc:
        return _unparseable(data, exc)
    except Exception as exc:  # the promise is: never raise on any input
        return _unparseable(data, exc)


def to_json(parsed: ParsedEmail) -> dict[str, object]:
    """A JSON-ready dict of the parse (attachments without their bytes)."""
    return {
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "references": list(parsed.references),
        "from": parsed.from_address,
        "from_name": parsed.from_name,
        "reply_to": parsed.reply_to,
        "to": list(parsed.to),
        "cc": list(parsed.cc),
        "subject": parsed.subject,
        "date": parsed.date.isoformat() if parsed.date else None,
        "text": parsed.text,
        "full_text": parsed.full_text,
        "from_html": parsed.from_html,
        "is_automatic": parsed.is_automatic,
        "automatic_reason": parsed.automatic_reason,
        "is_bounce": parsed.is_bounce,
        "bounced_message_id": parsed.bounced_message_id,
        "ticket_ref": parsed.ticket_ref,
        "attachments": [
            {
                "filename": item.filename,
                "content_type": item.content_type,
                "size": item.size,
                "inline": item.inline,
                "content_id": item.content_id,
            }
            for item in parsed.attachments
        ],
        "charset_problems": list(parsed.charset_problems),
        "problems": list(parsed.problems),
        "headers": dict(parsed.headers),
    }
