"""Placeholder keyword rules: category, kind, priority and language from a ticket's text. Pure.

Deliberately small: the classifier issue replaces this with contract rules plus a trained model.
Each rule says why it fired, in words a team lead understands.
"""

import re
from dataclasses import dataclass, field

from opora_shared.contracts import Contract
from opora_shared.vocabulary import Category, Kind, Language, Priority, Scope

RULES_VERSION = "rules-0.1"

_CATEGORY_WORDS: dict[Category, tuple[str, ...]] = {
    Category.PRINTING: (
        "принтер",
        "печат",
        "сканер",
        "мфу",
        "картридж",
        "тонер",
        "printer",
        "print",
        "scanner",
        "toner",
        "cartridge",
        "paper jam",
    ),
    Category.ACCOUNTING_SOFTWARE: ("1с", "1c", "бухгалтер", "erp", "accounting"),
    Category.EMAIL: ("почт", "письм", "outlook", "email", "e-mail", "mailbox", "inbox"),
    Category.NETWORK: (
        "интернет",
        "wi-fi",
        "wifi",
        "вайфай",
        "сеть",
        "vpn",
        "dns",
        "internet",
        "network",
        "router",
        "роутер",
    ),
    Category.ACCOUNTS_ACCESS: (
        "парол",
        "учётн",
        "учетн",
        "доступ",
        "password",
        "locked out",
        "account",
        "access",
        "new employee",
        "новый сотрудник",
    ),
    Category.SERVER_INFRA: (
        "сервер",
        "бэкап",
        "резервн",
        "server",
        "backup",
        "file share",
        "виртуал",
        "vmware",
        "hyper-v",
    ),
    Category.SECURITY: (
        "вирус",
        "фишинг",
        "взлом",
        "virus",
        "malware",
        "phishing",
        "ransomware",
        "hacked",
        "suspicious",
    ),
    Category.TELEPHONY: ("телефон", "атс", "sip", "phone", "pbx", "voip"),
    Category.WORKSTATION: (
        "компьютер",
        "ноутбук",
        "windows",
        "мышк",
        "клавиатур",
        "монитор",
        "computer",
        "laptop",
        "pc ",
        "keyboard",
        "monitor",
        "word",
        "excel",
    ),
}
_URGENT = (
    "срочно",
    "не работает весь",
    "весь офис",
    "все сотрудники",
    "urgent",
    "asap",
    "whole office",
    "everyone",
    "all users",
    "down",
)
_QUESTION = ("как ", "подскажите", "how do", "how to", "?")
_REQUEST = (
    "установ",
    "настро",
    "добав",
    "создай",
    "нужен",
    "нужна",
    "нужно",
    "install",
    "set up",
    "setup",
    "please add",
    "create",
    "need a",
    "new ",
)
_CONSUMABLES = (
    "купить картридж",
    "новый картридж",
    "закончился тонер",
    "закончилась бумага",
    "заказать бумаг",
    "buy toner",
    "new cartridge",
    "order paper",
    "out of toner",
    "ran out of paper",
    "need toner",
)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The classification of one ticket, with its reasons."""

    category: Category
    kind: Kind
    scope: Scope
    priority: Priority
    language: Language
    confidence: float
    reasons: tuple[str, ...] = field(default=())


def detect_language(text: str, default: Language) -> Language:
    """Russian when Cyrillic letters dominate, English when Latin ones do."""
    cyr, lat = len(_CYRILLIC.findall(text)), len(_LATIN.findall(text))
    if cyr == lat == 0:
        return default
    return Language.RU if cyr >= lat else Language.EN


def classify(
    subject: str, body: str, contract: Contract | None, *, review_threshold: float = 0.5
) -> Verdict:
    """Classify a ticket's text against its tenant's contract (None: unknown tenant)."""
    text = f"{subject}\n{body}".lower()
    reasons: list[str] = []
    category, hits = Category.OTHER, 0
    for candidate, words in _CATEGORY_WORDS.items():
        matched = [w for w in words if w in text]
        if len(matched) > hits:
            category, hits = candidate, len(matched)
            best = matched
    if hits:
        reasons.append(f"'{best[0].strip()}' → {category}")
    confidence = min(0.95, 0.4 + 0.2 * hits) if hits else 0.3

    kind = Kind.INCIDENT
    if any(w in text for w in _QUESTION):
        kind = Kind.QUESTION
    elif any(w in text for w in _REQUEST):
        kind = Kind.REQUEST

    priority = {Kind.INCIDENT: Priority.P3, Kind.REQUEST: Priority.P4, Kind.QUESTION: Priority.P4}[
        kind
    ]
    urgent = next((w for w in _URGENT if w in text), None)
    if urgent:
        priority = Priority.P2
        reasons.append(f"'{urgent.strip()}' → {priority}")

    language = detect_language(text, contract.language if contract else Language.EN)
    if contract is None:
        scope = Scope.NEEDS_REVIEW
        reasons.append("sender matches no contract → needs_review")
    elif confidence < review_threshold:
        scope = Scope.NEEDS_REVIEW
        reasons.append(f"confidence {confidence:.2f} below {review_threshold} → needs_review")
    else:
        scope = contract.services.scope_of(category)
        consumable = next((w for w in _CONSUMABLES if w in text), None)
        if consumable and "consumables" in contract.services.conditions:
            scope = contract.services.conditions["consumables"]
            reasons.append(f"'{consumable}' → consumables are {scope} in {contract.name}")
        else:
            reasons.append(f"{category} is {scope} in {contract.name}'s contract")
    return Verdict(category, kind, scope, priority, language, round(confidence, 2), tuple(reasons))
