"""Subject lines: reply/forward prefixes and the ticket number a client refers to. Pure.

Opora tags its own mail ``[#1042]``; clients keep the tag when they reply, or type the number
by hand ("Re: Fwd: Отв: [#1042] ...", "заявка №1042", "Ticket 1042", "# 1042"). Dates, times,
phone numbers, versions, order and invoice numbers must not be taken for a ticket.
"""

import re

_REPLY_WORDS = r"re|aw|sv|vs|antw|odp|ynt|отв|ответ|відп"
_FORWARD_WORDS = r"fwd?|wg|tr|rv|enc|пересл|перес|переслано"
_COUNTER = r"(?:\[\s*\d{1,4}\s*\]|\(\s*\d{1,4}\s*\)|\^\d{1,4})"  # Re[2]: Re(2): Re^2:
_PREFIX_WORD = rf"(?:{_REPLY_WORDS}|{_FORWARD_WORDS})\s*{_COUNTER}?"
# One prefix ("Re:", "RE :", "Re[2]:", "Fwd:", "Отв:") or a bracketed tag ("[EXTERNAL]") that is
# itself followed by a prefix, so "[list] Re: x" loses both but "[#1042] x" keeps its tag.
_PREFIX = re.compile(
    rf"^\s*(?:{_PREFIX_WORD}\s*[:：]|\[[^\[\]]{{0,80}}\]\s*(?={_PREFIX_WORD}\s*[:：]))\s*",
    re.IGNORECASE,
)
_FORWARD = re.compile(rf"^\s*(?:{_FORWARD_WORDS})\s*{_COUNTER}?\s*[:：]", re.IGNORECASE)
_LEADING_TAGS = re.compile(r"^(?:\s*\[[^\[\]]{0,80}\])+")

# "[#1042]", as Opora writes it.
_TAG = re.compile(r"\[\s*#\s*(\d{1,10})\s*\]")
# After the number: not another digit or letter, nor a date/time/phone/version continuation.
_END = r"(?![\w])(?![.,:/\-]\d)"
_KEYWORD = re.compile(
    r"(?<![\w])(?:tickets?|tkt|incident|тикет\w*|заявк\w*|обращени\w*|инцидент\w*)"
    r"(?P<marker>\s*(?:#|№|n[o°º]\.?|nr\.?|номер)\s*|\s*[:\-]?\s*)"
    rf"(?P<number>\d{{1,10}}){_END}(?P<after>\s*\S?)",
    re.IGNORECASE,
)
_BARE = re.compile(rf"(?<![\w&#])#\s?(?P<number>\d{{1,10}}){_END}")
# A "#N" right after one of these words is their number, not a ticket's.
_NOT_TICKET_WORDS = re.compile(
    r"order|invoice|po|pr|issue|bug|build|job|room|step|item|page|line|version|no|number|"
    r"printer|pc|floor|office|desk|заказ\w*|сч[её]т\w*|накладн\w*|договор\w*|кабинет\w*|"
    r"офис\w*|комнат\w*|этаж\w*|принтер\w*|мфу|пк|компьютер\w*|пункт\w*|стр|страниц\w*|"
    r"строк\w*|верси\w*|шаг\w*|номер\w*|дом|кв",
    re.IGNORECASE,
)
_LAST_WORD = re.compile(r"(\w+)\W*$")


def strip_subject_prefixes(subject: str) -> str:
    """The subject without reply/forward prefixes ("Re: Fwd: Отв[2]: x" gives "x")."""
    text = " ".join(subject.split())
    for _ in range(50):
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return text


def is_forward(subject: str) -> bool:
    """True when the subject's first prefix says the mail was forwarded (Fwd:, FW:, Пересл:)."""
    return bool(_FORWARD.match(_LEADING_TAGS.sub("", subject[:300])))


def _number(value: str) -> str | None:
    number = int(value)
    return str(number) if number > 0 else None


def ticket_ref(subject: str) -> str | None:
    """The ticket number the subject refers to, or None; the ``[#N]`` tag wins over typed forms."""
    subject = " ".join(subject.split())[:1000]
    tag = _TAG.search(subject)
    if tag:
        return _number(tag.group(1))
    for match in _KEYWORD.finditer(subject):
        has_marker = bool(match.group("marker").strip(" :-"))
        after = match.group("after").strip()
        # "заявка 5 картриджей" is an amount; "заявка 1042 принтер" or "Ticket 7." a number.
        if has_marker or len(match.group("number")) >= 3 or not after or not after.isalpha():
            return _number(match.group("number"))
    for match in _BARE.finditer(subject):
        previous = _LAST_WORD.search(subject[max(match.start() - 40, 0) : match.start()])
        if previous is None or not _NOT_TICKET_WORDS.fullmatch(previous.group(1)):
            return _number(match.group("number"))
    return None
