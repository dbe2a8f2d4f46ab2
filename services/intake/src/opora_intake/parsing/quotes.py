"""The new text of a reply: quoted history, header blocks, signatures and mobile footers cut. Pure.

Works line by line on plain text (HTML bodies arrive converted, with ``<blockquote>`` as ``> ``
lines). Recognises Outlook ("-----Original Message-----", "From:/Sent:/To:/Subject:" and the
Russian "От:/Отправлено:/Кому:/Тема:" blocks), Gmail, Apple Mail, Thunderbird, Yandex and Mail.ru
attributions ("On ... wrote:", "... написал(а):", "..., Иван <ivan@x.ru>:"), ``>`` quotes,
"-- " signatures and "Sent from my iPhone" / "Отправлено с iPhone" footers. Forwarded content
is the client's request, so a forward keeps it. Only the first ``MAX_SCAN_CHARS`` characters are
scanned; every pattern is anchored and applied to a line of bounded length (no regex blow-up).
"""

import re

#: Text beyond this is never scanned (and not kept in the new text).
MAX_SCAN_CHARS = 100_000
_MAX_LINE = 400
_SIGNATURE_MAX_LINES = 25

_ORIGINAL_MESSAGE = re.compile(
    r"^[-_=*\s]{2,}\s*(?:original\s+message|исходное\s+сообщение|ursprüngliche\s+nachricht|"
    r"message\s+d'origine|mensaje\s+original|mensagem\s+original|messaggio\s+originale|"
    r"oorspronkelijk\s+bericht|oryginalna\s+wiadomość|оригинальное\s+сообщение)\s*[-_=*\s]{2,}$",
    re.IGNORECASE,
)
_FORWARD_MARKER = re.compile(
    r"^[-_=*\s>]*(?:forwarded\s+message|begin\s+forwarded\s+message|пересылаемое\s+сообщение|"
    r"перенаправленное\s+сообщение|пересланное\s+сообщение|weitergeleitete\s+nachricht|"
    r"message\s+transféré|mensaje\s+reenviado)\s*:?\s*[-_=*\s]*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(
    r"^[*_\s]*(?:from|от|von|de|da|van|od|fra|från|kimden|від)\s*[*_]*\s*[:：]", re.IGNORECASE
)
_HEADER_OTHER = re.compile(
    r"^[*_\s]*(?P<key>sent|date|to|cc|subject|отправлено|дата|кому|копия|тема|gesendet|datum|an|"
    r"betreff|envoyé|à|objet|enviado|para|asunto|fecha|inviato|oggetto|a)\s*[*_]*\s*[:：]",
    re.IGNORECASE,
)
_HEADER_INLINE = re.compile(
    r"\b(?:sent|date|отправлено|дата|gesendet|envoyé)\s*[:：].*\b(?:to|кому|an|à|subject|тема)\s*[:：]",
    re.IGNORECASE,
)
_KEY_GROUP = {
    "sent": "date", "date": "date", "отправлено": "date", "дата": "date", "gesendet": "date",
    "datum": "date", "envoyé": "date", "enviado": "date", "fecha": "date", "inviato": "date",
    "to": "to", "кому": "to", "an": "to", "à": "to", "para": "to", "a": "to",
    "cc": "cc", "копия": "cc",
    "subject": "subject", "тема": "subject", "betreff": "subject", "objet": "subject",
    "asunto": "subject", "oggetto": "subject",
}  # fmt: skip
_WROTE = re.compile(
    r"(?:wrote|writes|написал\(а\)|написала|написал|пишет|schrieb|a\s+écrit|escribió|"
    r"ha\s+scritto|schreef|napisał\(a\)|napisał|skrev|kirjoitti|escreveu)\s*[:：]\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(
    r"^(?:on|am|le|el|il|op|den|em|\d|[а-яё]{2,11},?\s+\d|\S+,\s+\d|\d{1,2}\s)", re.IGNORECASE
)
_ADDRESS_COLON = re.compile(r"<[^<>\s]+@[^<>\s]+>\s*[:：]\s*$")
_RULE = re.compile(r"^\s*(?:_{8,}|-{8,}|={8,})\s*$")
_MOBILE_FOOTER = re.compile(
    r"^\s*(?:"
    r"sent\s+(?:from|via|with)\s+.{0,60}"
    r"|get\s+outlook\s+for\s+.{0,30}"
    r"|отправлено\s+(?:с|со|из|через)\s+.{0,60}"
    r"|отправлено\s+с\s+моего\s+.{0,40}"
    r"|von\s+meinem\s+.{0,40}\s+gesendet"
    r"|envoyé\s+de\s+mon\s+.{0,40}"
    r"|enviado\s+desde\s+mi\s+.{0,40}"
    r"|скачайте\s+.{0,40}|загрузите\s+.{0,40}"
    r")\s*$",
    re.IGNORECASE,
)
_MOBILE_WORDS = re.compile(
    r"iphone|ipad|android|mobile|мобильн|смартфон|телефон|samsung|galaxy|huawei|xiaomi|"
    r"outlook|mail\.ru|почты|почта|яндекс|yandex|gmail|yahoo|blackberry|windows|aol|"
    r"мой\s+офис|blue\s*mail|spark|my\s+\w+",
    re.IGNORECASE,
)
_BLANKS = re.compile(r"\n{3,}")


def _is_header_block(lines: list[str], start: int) -> bool:
    """A "From:" line followed by at least two other header lines (date, to, cc, subject)."""
    first = lines[start][:_MAX_LINE]
    if not _HEADER_FROM.match(first):
        return False
    if _HEADER_INLINE.search(first):
        return True
    groups: set[str] = set()
    seen = 0
    for line in lines[start + 1 : start + 12]:
        text = line[:_MAX_LINE].strip()
        if not text:
            continue
        seen += 1
        match = _HEADER_OTHER.match(text)
        if match:
            groups.add(_KEY_GROUP.get(match.group("key").lower(), "other"))
        elif seen > 6:
            break
        if len(groups) >= 2:
            return True
    return False


def _is_attribution(lines: list[str], index: int) -> int:
    """How many lines (1-3) an attribution starting at ``index`` spans, 0 when it is none."""
    text = ""
    for span in range(1, 4):
        if index + span > len(lines):
            return 0
        part = lines[index + span - 1][:_MAX_LINE].strip()
        if not part:
            return 0
        text = f"{text} {part}".strip()
        if len(text) > _MAX_LINE:
            return 0
        if not _ATTRIBUTION_START.match(text) and "@" not in text:
            return 0
        if _WROTE.search(text) and (any(c.isdigit() for c in text) or "@" in text):
            return span
        if _ADDRESS_COLON.search(text) and any(c.isdigit() for c in text):
            return span
    return 0


def _history_start(lines: list[str], *, forward: bool) -> int | None:
    """Index of the line where quoted history begins, or None."""
    for index, raw in enumerate(lines):
        line = raw[:_MAX_LINE].strip()
        if not line:
            continue
        if _FORWARD_MARKER.match(line):
            return None  # forwarded content below is the request itself
        if forward:
            continue
        if _ORIGINAL_MESSAGE.match(line):
            return index
        if _is_header_block(lines, index):
            return _rule_before(lines, index)
        if _is_attribution(lines, index):
            return index
    return None


def _rule_before(lines: list[str], index: int) -> int:
    """Move a cut up over the "________" rule Outlook draws above its header block."""
    previous = index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    if previous >= 0 and _RULE.match(lines[previous][:_MAX_LINE]):
        return previous
    return index


def _drop_quoted(lines: list[str]) -> list[str]:
    """Drop ``>`` lines and the attribution line right above a quoted block."""
    kept: list[str] = []
    for line in lines:
        if line.lstrip().startswith(">"):
            while kept and not kept[-1].strip():
                kept.pop()
            if (
                kept
                and kept[-1].rstrip().endswith((":", "："))
                and _is_attribution(kept, len(kept) - 1)
            ):
                kept.pop()
            kept.append("")
            continue
        kept.append(line)
    return kept


def _drop_signature(lines: list[str]) -> list[str]:
    """Cut at the first "-- " separator among the last lines (a signature is short)."""
    for index in range(max(len(lines) - _SIGNATURE_MAX_LINES, 1), len(lines)):
        if lines[index].strip() == "--":
            return lines[:index]
    return lines


def _drop_mobile_footer(lines: list[str]) -> list[str]:
    """Drop "Sent from my iPhone"-style lines among the last few non-empty lines."""
    checked = 0
    index = len(lines) - 1
    while index >= 0 and checked < 3:
        line = lines[index][:_MAX_LINE]
        if line.strip():
            checked += 1
            if _MOBILE_FOOTER.match(line) and _MOBILE_WORDS.search(line):
                del lines[index]
        index -= 1
    return lines


def strip_quotes(text: str, *, forward: bool = False) -> str:
    """The new text of a mail body: history, quotes, signature and mobile footer removed."""
    lines = text[:MAX_SCAN_CHARS].split("\n")
    start = _history_start(lines, forward=forward)
    if start is not None:
        lines = lines[:start]
    if not forward:
        lines = _drop_quoted(lines)
    lines = _drop_signature([line.rstrip() for line in lines])
    lines = _drop_mobile_footer(lines)
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")
