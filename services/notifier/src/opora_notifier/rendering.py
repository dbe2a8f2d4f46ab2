"""Client acknowledgements rendered as text, in the ticket's language. Pure.

Plain string templates for the walking skeleton; the notifier issue brings Jinja2 templates,
HTML parts and every other notice.
"""

from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from opora_shared.vocabulary import Language, Scope

_SCOPE_TEXT = {
    Language.RU: {
        Scope.INCLUDED: "Заявка входит в ваш договор обслуживания.",
        Scope.BILLABLE: "Эта работа оплачивается отдельно: мы запросим согласие у ответственного "
        "лица вашей компании до начала работ.",
        Scope.EXCLUDED: "Эта работа не входит в ваш договор; менеджер свяжется с вами.",
        Scope.NEEDS_REVIEW: "Руководитель группы уточнит условия обслуживания по этой заявке.",
    },
    Language.EN: {
        Scope.INCLUDED: "This request is covered by your support contract.",
        Scope.BILLABLE: "This work is billed separately: we will ask your company's approver "
        "before we start.",
        Scope.EXCLUDED: "This work is not covered by your contract; your account manager will "
        "be in touch.",
        Scope.NEEDS_REVIEW: "A team lead will confirm how this request is covered.",
    },
}

_ACK = {
    Language.RU: (
        "[#{ticket}] Заявка принята: {subject}",
        "Здравствуйте{name}!\n\nВаша заявка зарегистрирована под номером #{ticket}:\n"
        "«{subject}»\n\n{scope}\n{deadline}\n\nЧтобы дополнить заявку, просто ответьте на это "
        "письмо, сохранив номер [#{ticket}] в теме.\n\n--\nСлужба поддержки\n",
        "Мы ответим до {due} ({tz}).",
        "Мы ответим, как только подтвердим вашу организацию.",
    ),
    Language.EN: (
        "[#{ticket}] Request received: {subject}",
        'Hello{name},\n\nYour request is logged as ticket #{ticket}:\n"{subject}"\n\n{scope}\n'
        "{deadline}\n\nTo add anything, just reply to this message and keep [#{ticket}] in the "
        "subject.\n\n--\nSupport desk\n",
        "We will respond by {due} ({tz}).",
        "We will respond as soon as we have confirmed your organisation.",
    ),
}


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """What an acknowledgement says; rendering turns it into a mail."""

    ticket_id: str
    language: Language
    requester_email: str
    requester_name: str | None
    subject: str
    scope: Scope
    first_response_due: datetime | None
    timezone: str
    in_reply_to: str | None = None
    """The client's Message-ID when the ticket came by mail, so the ack threads under it."""


def format_due(due: datetime, timezone: str, language: Language) -> str:
    """A deadline in the client's timezone and language."""
    local = due.astimezone(ZoneInfo(timezone))
    return local.strftime("%d.%m.%Y %H:%M" if language is Language.RU else "%d %b %Y %H:%M")


def render_acknowledgement(
    ack: Acknowledgement, *, sender: Address, message_id: str, now: datetime
) -> EmailMessage:
    """The acknowledgement mail: threaded by subject tag, marked as an automatic reply."""
    subject_tpl, body_tpl, due_tpl, no_due = _ACK[ack.language]
    subject = " ".join(ack.subject.split())[:150]
    deadline = (
        due_tpl.format(
            due=format_due(ack.first_response_due, ack.timezone, ack.language), tz=ack.timezone
        )
        if ack.first_response_due
        else no_due
    )
    msg = EmailMessage()
    msg["Subject"] = subject_tpl.format(ticket=ack.ticket_id, subject=subject)
    msg["From"] = sender
    msg["To"] = Address(display_name=ack.requester_name or "", addr_spec=ack.requester_email)
    msg["Reply-To"] = sender
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    if ack.in_reply_to:
        msg["In-Reply-To"] = ack.in_reply_to
        msg["References"] = ack.in_reply_to
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Opora-Ticket"] = ack.ticket_id
    msg.set_content(
        body_tpl.format(
            ticket=ack.ticket_id,
            subject=subject,
            name=f", {ack.requester_name}" if ack.requester_name else "",
            scope=_SCOPE_TEXT[ack.language][ack.scope],
            deadline=deadline,
        ),
        cte="8bit",  # readable in var/outbox; SMTP relays take 8BITMIME
    )
    return msg
