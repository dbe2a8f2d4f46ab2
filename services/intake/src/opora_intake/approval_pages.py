"""The pages an approver sees behind an approval link, in the tenant's language. Pure.

Four pages: the confirmation (what the link will do, and the button that does it), the thanks
after the decision is recorded, "already decided", and an error naming the problem. HTML from
one autoescaped Jinja2 template; no script, no external resource.
"""

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from opora_shared.vocabulary import Language, Scope, TicketChange

Decision = Literal["approve", "decline"]

WORDS: dict[Language, dict[str, str]] = {
    Language.RU: {
        "title": "Согласование работ по заявке #{ticket}",
        "ask_approve": "Вы согласуете работы по этой заявке.",
        "ask_decline": "Вы отказываетесь от работ по этой заявке.",
        "button_approve": "Согласовать",
        "button_decline": "Отклонить",
        "note": "Решение записывается только нажатием кнопки; открыть эту страницу безопасно.",
        "scope_billable": "По договору эта работа оплачивается отдельно.",
        "scope_excluded": "Эта работа не входит в договор обслуживания.",
        "thanks": "Спасибо! Ваше решение записано: {decision}.",
        "thanks_approved": "Мы приступаем к работе и сообщим о результате.",
        "thanks_declined": "Работы по заявке выполняться не будут.",
        "decided": "Решение по этой заявке уже принято: {decision} ({when}).",
        "approved": "согласовано",
        "declined": "отклонено",
        "error_title": "Ссылка не сработала",
        "not_found": "Заявка #{ticket} не найдена.",
        "approver_changed": "Согласующий по договору изменился, и эта ссылка больше не "
        "действует. Запросите новую в службе поддержки.",
        "unavailable": "Сервис временно недоступен, решение не записано. Попробуйте через минуту.",
    },
    Language.EN: {
        "title": "Approval of work on ticket #{ticket}",
        "ask_approve": "You are approving the work on this ticket.",
        "ask_decline": "You are declining the work on this ticket.",
        "button_approve": "Approve",
        "button_decline": "Decline",
        "note": "Only the button records a decision; opening this page is safe.",
        "scope_billable": "Under your contract this work is billed separately.",
        "scope_excluded": "This work is not covered by your support contract.",
        "thanks": "Thank you! Your decision is recorded: {decision}.",
        "thanks_approved": "We are starting the work and will report back.",
        "thanks_declined": "No work will be done on this ticket.",
        "decided": "This ticket has been decided already: {decision} ({when}).",
        "approved": "approved",
        "declined": "declined",
        "error_title": "The link did not work",
        "not_found": "Ticket #{ticket} was not found.",
        "approver_changed": "Your contract's approver has changed, so this link no longer "
        "works. Ask support for a new one.",
        "unavailable": "The service is unavailable for a moment; nothing was recorded. Try "
        "again in a minute.",
    },
}

_env = Environment(
    loader=PackageLoader("opora_intake", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def _render(**context: object) -> str:
    return _env.get_template("approval.html").render(**context)


def words(language: Language, key: str, **values: str) -> str:
    """One phrase in one language, with its values filled in."""
    return WORDS[language][key].format(**values)


def _decision_word(language: Language, decision: TicketChange) -> str:
    return WORDS[language]["approved" if decision is TicketChange.APPROVED else "declined"]


def confirm_page(
    language: Language,
    *,
    ticket_id: str,
    subject: str,
    scope: Scope | None,
    decision: Decision,
    action: str,
) -> str:
    """What the link will do, and the one button (a POST) that does it."""
    lines = [words(language, f"ask_{decision}")]
    if scope in (Scope.BILLABLE, Scope.EXCLUDED):
        lines.append(words(language, f"scope_{scope.value}"))
    return _render(
        lang=language.value,
        title=words(language, "title", ticket=ticket_id),
        ticket_id=ticket_id,
        subject=subject,
        lines=lines,
        error=False,
        form={
            "action": action,
            "decision": decision,
            "button": words(language, f"button_{decision}"),
            "note": words(language, "note"),
        },
    )


def recorded_page(
    language: Language, *, ticket_id: str, subject: str, decision: TicketChange
) -> str:
    """Thanks: the decision is recorded."""
    follow = "thanks_approved" if decision is TicketChange.APPROVED else "thanks_declined"
    return _render(
        lang=language.value,
        title=words(language, "title", ticket=ticket_id),
        ticket_id=ticket_id,
        subject=subject,
        lines=[
            words(language, "thanks", decision=_decision_word(language, decision)),
            words(language, follow),
        ],
        error=False,
        form=None,
    )


def decided_page(
    language: Language,
    *,
    ticket_id: str,
    subject: str,
    decision: TicketChange,
    decided_at: datetime,
    timezone: str,
) -> str:
    """The ticket already has a decision: which, and when (in the contract's timezone)."""
    when = decided_at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")
    return _render(
        lang=language.value,
        title=words(language, "title", ticket=ticket_id),
        ticket_id=ticket_id,
        subject=subject,
        lines=[
            words(
                language,
                "decided",
                decision=_decision_word(language, decision),
                when=f"{when} {timezone}",
            )
        ],
        error=False,
        form=None,
    )


def error_page(language: Language | None, message: str) -> str:
    """An error naming the problem; both languages when the tenant's is not known."""
    languages = [language] if language is not None else [Language.RU, Language.EN]
    return _render(
        lang=(language or Language.EN).value,
        title=" / ".join(words(lang, "error_title") for lang in languages),
        ticket_id="",
        subject="",
        lines=[message],
        error=True,
        form=None,
    )
