"""The client's web form at ``/`` and a ticket's status page behind its signed link.

The form is the web channel for people: plain HTML (no script), Russian or English (``?lang=``,
then Accept-Language), no account, like sending an email. Each render carries an idempotency key
(a uuid) and a form token signing it with a short expiry, so a double submit makes one ticket
and a page on another site cannot post it blind. A valid post stores the attachments in the
object store, publishes ``TicketReceived`` and answers with the ticket number and the status
link; invalid input re-renders the form with the person's values and a message per field (422),
too much data is 413, NATS down is 503 with the values kept: never a 500.

The status page (``/status/{token}``, the link of ``opora_shared.status_links``) shows what the
client may see and nothing else: status, the scope verdict, deadlines in the contract's
timezone and the public updates. Never internal notes, automatic replies, escalations or
anyone's address; a token names one tenant and one ticket, and only that ticket's events of
that tenant are read. A bad, expired or unknown link is the same 404.

The pure parts (language choice, ``check_form``, ``check_files``, ``public_view``) take plain
values and are unit-tested; the routes only read the request, call them and store. Tokens,
addresses and texts are never logged.
"""

import contextlib
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from nats.errors import Error as NatsError
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Message

from opora_intake.adapters.attachments import AttachmentStore
from opora_intake.api import RuntimeDep
from opora_intake.api_models import Email
from opora_intake.runtime import IntakeRuntime
from opora_intake.settings import IntakeSettings
from opora_shared.approvals import signing_key
from opora_shared.errors import NotReadyError
from opora_shared.events import (
    AttachmentRef,
    Event,
    Requester,
    SlaArmed,
    TicketAssigned,
    TicketClassified,
    TicketReceived,
    TicketUpdated,
    derive_id,
)
from opora_shared.nats.broker import jetstream
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.status_links import StatusLinkError, StatusLinks
from opora_shared.tickets import fold
from opora_shared.vocabulary import Channel, Language, Scope, TicketChange, TicketStatus

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

FORM_PATH = "/"
"""Where the form lives; the app's JSON body limit does not apply to its posts."""
STATIC_PATH = "/static"
FIELDS = ("name", "email", "subject", "description")
"""The form's text fields, in the order they appear (and their errors are listed)."""
MAX_LENGTH = {"name": 200, "email": 254, "subject": 998, "description": 100_000}
"""The same bounds as the HTTP API's ``TicketCreate``."""
FILES_FIELD = "attachments"
_FORM_SALT = "opora.webform.v1"

# Pages carry tokens (the form's, the status link's): keep them out of caches and Referer
# headers; the pages load nothing but their own stylesheet and post only to themselves.
SAFE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
PRIVATE_HEADERS = {**SAFE_HEADERS, "X-Robots-Tag": "noindex, nofollow"}

# -- words ------------------------------------------------------------------------------------

WORDS: dict[Language, dict[str, str]] = {
    Language.RU: {
        "site": "Служба поддержки",
        "other_language": "English",
        "error_prefix": "Ошибка: ",
        "form_title": "Новая заявка",
        "form_intro": "Опишите, что случилось, — мы ответим на вашу почту. Регистрация не нужна.",
        "required_note": "Поля с пометкой «обязательно» нужно заполнить.",
        "required": "обязательно",
        "label_name": "Ваше имя",
        "label_email": "Электронная почта",
        "hint_email": "Сюда придёт подтверждение с номером заявки и сроком ответа.",
        "label_subject": "Тема",
        "hint_subject": "Коротко, что случилось. Например: «Не печатает принтер в бухгалтерии».",
        "label_description": "Описание",
        "hint_description": "Что случилось и когда, что вы уже пробовали, текст ошибки, если "
        "он есть.",
        "label_attachments": "Файлы",
        "optional": "необязательно",
        "hint_attachments": "Скриншоты, документы: до {files} файлов, каждый до {per_file}, "
        "всего до {total}.",
        "no_attachments": "Файлы не принимаются: опишите всё в тексте.",
        "submit": "Отправить заявку",
        "errors_title": "Проверьте форму",
        "error_required_name": "Укажите ваше имя",
        "error_required_email": "Укажите адрес электронной почты",
        "error_email": "Адрес почты должен быть вида name@example.ru",
        "error_required_subject": "Укажите тему",
        "error_required_description": "Опишите, что случилось",
        "error_too_long": "Не больше {max} символов",
        "error_too_many_files": "Не больше {max} файлов",
        "error_file_too_large": "Файл «{name}» больше {max}",
        "error_files_too_large": "Файлы вместе больше {max}",
        "error_expired": "Форма устарела или открыта не на нашем сайте. Проверьте данные и "
        "отправьте ещё раз (файлы выберите заново).",
        "error_unavailable": "Заявку не удалось сохранить: сервис временно недоступен. Текст "
        "сохранён на этой странице: отправьте форму ещё раз через минуту (файлы выберите "
        "заново).",
        "received_title": "Заявка #{ticket} принята",
        "received_intro": "Спасибо! Номер вашей заявки: {ticket}. Мы ответим на {email}.",
        "received_duplicate": "Эта форма уже была отправлена: вторая заявка не создана.",
        "received_files": "Файлов приложено: {count}.",
        "status_link": "Страница статуса заявки",
        "status_link_hint": "Сохраните ссылку: по ней видно, что происходит с заявкой. Она есть "
        "и в письме-подтверждении. Не пересылайте её посторонним.",
        "next_title": "Что дальше",
        "next_classify": "Мы сверяем заявку с вашим договором обслуживания: входит ли работа в "
        "договор и насколько она срочная.",
        "next_ack": "На почту придёт подтверждение с номером заявки и сроком ответа.",
        "next_engineer": "Инженер возьмёт заявку в работу в срок по договору и ответит письмом.",
        "next_approval": "Если работа оплачивается отдельно, сначала мы попросим согласия у "
        "ответственного лица вашей компании.",
        "new_request": "Отправить ещё одну заявку",
        "status_title": "Заявка #{ticket}",
        "label_status": "Статус",
        "label_scope": "По договору",
        "label_first_response": "Первый ответ",
        "label_resolution": "Решение",
        "label_engineer": "Инженер",
        "times_in": "Время указано по часовому поясу {timezone}.",
        "status_new": "Получена, разбирается",
        "status_open": "Открыта, ждёт инженера",
        "status_in_progress": "В работе",
        "status_waiting_on_client": "Ждём вашего ответа",
        "status_resolved": "Решена",
        "scope_pending": "Ещё не определено",
        "scope_included": "Входит в ваш договор обслуживания",
        "scope_billable": "Оплачивается отдельно",
        "scope_excluded": "Не входит в договор обслуживания",
        "scope_needs_review": "Уточняется: руководитель проверит, входит ли работа в договор",
        "approval_requested": "ждём согласия ответственного лица вашей компании",
        "approval_approved": "работы согласованы",
        "approval_declined": "от работ отказались",
        "due_by": "до {when}",
        "given_at": "дан {when}",
        "resolved_at": "решена {when}",
        "stopped": "остановлено",
        "no_deadlines": "сроки появятся, когда заявку разберут",
        "engineer_assigned": "назначен",
        "engineer_none": "ещё не назначен",
        "history_title": "История",
        "history_empty": "Пока ничего.",
        "ev_received": "Заявка получена {channel}",
        "channel_email": "по почте",
        "channel_web": "через веб-форму",
        "channel_api": "через API",
        "channel_integration": "от системы мониторинга",
        "ev_classified": "Заявка сверена с договором",
        "ev_armed": "Установлены сроки",
        "ev_rearmed": "Сроки пересчитаны",
        "deadlines_text": "Первый ответ до {first}, решение до {resolution}.",
        "ev_assigned": "Назначен инженер",
        "ev_acknowledged": "Инженер взял заявку в работу",
        "ev_replied": "Ответ службы поддержки",
        "ev_client_replied": "Ваш ответ",
        "ev_waiting_on_client": "Нужен ваш ответ",
        "ev_resolved": "Заявка решена",
        "ev_reopened": "Заявка открыта снова",
        "ev_approved": "Работы согласованы",
        "ev_declined": "От работ отказались",
        "ev_priority_changed": "Изменена срочность: {priority}",
        "priority_P1": "критическая",
        "priority_P2": "высокая",
        "priority_P3": "обычная",
        "priority_P4": "низкая",
        "not_found_title": "Страница не найдена",
        "not_found_text": "Ссылка неверна или устарела, или такой заявки нет. Проверьте, что "
        "ссылка скопирована целиком, или напишите в службу поддержки.",
        "too_large_title": "Слишком много данных",
        "too_large_text": "Вместе с файлами форма больше {max}. Вернитесь назад, уберите или "
        "уменьшите файлы и отправьте ещё раз.",
        "bad_request_title": "Форму не удалось прочитать",
        "bad_request_text": "Вернитесь к форме и отправьте её ещё раз.",
        "cross_site_title": "Форма отправлена с другого сайта",
        "cross_site_text": "Заявку можно отправить только со страницы нашей формы.",
        "unavailable_title": "Сервис временно недоступен",
        "unavailable_text": "Попробуйте через минуту.",
        "back_to_form": "К форме заявки",
    },
    Language.EN: {
        "site": "Support",
        "other_language": "Русский",
        "error_prefix": "Error: ",
        "form_title": "New support request",
        "form_intro": "Tell us what is wrong and we will answer by email. No account needed.",
        "required_note": "Fields marked “required” must be filled in.",
        "required": "required",
        "label_name": "Your name",
        "label_email": "Email address",
        "hint_email": "We send the acknowledgement with the ticket number and the response "
        "deadline here.",
        "label_subject": "Subject",
        "hint_subject": "In a few words, e.g. “The accounts printer does not print”.",
        "label_description": "Description",
        "hint_description": "What happened and when, what you have tried, the error message if "
        "there is one.",
        "label_attachments": "Files",
        "optional": "optional",
        "hint_attachments": "Screenshots, documents: up to {files} files, {per_file} each, "
        "{total} in total.",
        "no_attachments": "Files are not accepted: please put everything in the text.",
        "submit": "Send request",
        "errors_title": "Please check the form",
        "error_required_name": "Enter your name",
        "error_required_email": "Enter your email address",
        "error_email": "Enter an email address like name@example.com",
        "error_required_subject": "Enter a subject",
        "error_required_description": "Describe what is wrong",
        "error_too_long": "Use at most {max} characters",
        "error_too_many_files": "Attach at most {max} files",
        "error_file_too_large": "The file “{name}” is larger than {max}",
        "error_files_too_large": "The files together are larger than {max}",
        "error_expired": "This form has expired or was not opened on our site. Check your "
        "details and send it again (choose any files again).",
        "error_unavailable": "We could not save your request: the service is unavailable for a "
        "moment. Your text is kept on this page: send the form again in a minute (choose any "
        "files again).",
        "received_title": "Ticket #{ticket} received",
        "received_intro": "Thank you! Your ticket number is {ticket}. We will answer at {email}.",
        "received_duplicate": "This form had been sent already: no second ticket was made.",
        "received_files": "Files attached: {count}.",
        "status_link": "Your ticket's status page",
        "status_link_hint": "Keep this link: it shows what is happening with your ticket. It is "
        "also in the acknowledgement email. Do not share it with strangers.",
        "next_title": "What happens next",
        "next_classify": "We check the request against your support contract: whether the work "
        "is covered, and how urgent it is.",
        "next_ack": "An acknowledgement with the ticket number and the response deadline is on "
        "its way to your mailbox.",
        "next_engineer": "An engineer takes it up within your contract's response time and "
        "answers by email.",
        "next_approval": "If the work is billed separately, we first ask your company's approver.",
        "new_request": "Send another request",
        "status_title": "Ticket #{ticket}",
        "label_status": "Status",
        "label_scope": "Your contract",
        "label_first_response": "First response",
        "label_resolution": "Resolution",
        "label_engineer": "Engineer",
        "times_in": "Times are in the {timezone} time zone.",
        "status_new": "Received, being sorted",
        "status_open": "Open, waiting for an engineer",
        "status_in_progress": "In progress",
        "status_waiting_on_client": "Waiting for your answer",
        "status_resolved": "Resolved",
        "scope_pending": "Not decided yet",
        "scope_included": "Covered by your support contract",
        "scope_billable": "Billed separately",
        "scope_excluded": "Not covered by your support contract",
        "scope_needs_review": "Being checked: a team lead confirms whether your contract covers it",
        "approval_requested": "awaiting your company approver's consent",
        "approval_approved": "approved by your company's approver",
        "approval_declined": "declined by your company's approver",
        "due_by": "by {when}",
        "given_at": "given {when}",
        "resolved_at": "resolved {when}",
        "stopped": "stopped",
        "no_deadlines": "deadlines appear once the ticket is sorted",
        "engineer_assigned": "assigned",
        "engineer_none": "not assigned yet",
        "history_title": "History",
        "history_empty": "Nothing yet.",
        "ev_received": "Ticket received {channel}",
        "channel_email": "by email",
        "channel_web": "through the web form",
        "channel_api": "through the API",
        "channel_integration": "from a monitoring tool",
        "ev_classified": "Checked against your contract",
        "ev_armed": "Deadlines set",
        "ev_rearmed": "Deadlines recalculated",
        "deadlines_text": "First response by {first}, resolution by {resolution}.",
        "ev_assigned": "An engineer is assigned",
        "ev_acknowledged": "An engineer took up the ticket",
        "ev_replied": "Answer from support",
        "ev_client_replied": "Your reply",
        "ev_waiting_on_client": "We need your answer",
        "ev_resolved": "Ticket resolved",
        "ev_reopened": "Ticket reopened",
        "ev_approved": "Work approved",
        "ev_declined": "Work declined",
        "ev_priority_changed": "Urgency changed: {priority}",
        "priority_P1": "critical",
        "priority_P2": "high",
        "priority_P3": "normal",
        "priority_P4": "low",
        "not_found_title": "Page not found",
        "not_found_text": "The link is wrong or has expired, or there is no such ticket. Check "
        "that the whole link was copied, or write to support.",
        "too_large_title": "Too much data",
        "too_large_text": "With its files the form is larger than {max}. Go back, remove or "
        "shrink files and send it again.",
        "bad_request_title": "The form could not be read",
        "bad_request_text": "Go back to the form and send it again.",
        "cross_site_title": "The form was sent from another site",
        "cross_site_text": "Requests can only be sent from our own form page.",
        "unavailable_title": "The service is unavailable for a moment",
        "unavailable_text": "Try again in a minute.",
        "back_to_form": "Back to the request form",
    },
}

_MONTHS = {
    Language.RU: (
        *("января", "февраля", "марта", "апреля", "мая", "июня"),
        *("июля", "августа", "сентября", "октября", "ноября", "декабря"),
    ),
    Language.EN: (
        *("January", "February", "March", "April", "May", "June"),
        *("July", "August", "September", "October", "November", "December"),
    ),
}


def words(language: Language, key: str, **values: object) -> str:
    """One phrase in one language, with its values filled in."""
    return WORDS[language][key].format(**values)


def format_size(size: int, language: Language) -> str:
    """A byte count as people read it: ``10 МБ``, ``512 KB``."""
    units = ("байт", "КБ", "МБ", "ГБ") if language is Language.RU else ("bytes", "KB", "MB", "GB")
    value, unit = float(size), 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return (
        f"{value:.0f} {units[unit]}" if unit == 0 or value >= 10 else f"{value:.1f} {units[unit]}"
    )


def format_time(moment: datetime, language: Language, timezone: str) -> str:
    """A moment in a timezone, in words: ``12 марта 2025, 14:00``."""
    local = moment.astimezone(_zone(timezone))
    return f"{local.day} {_MONTHS[language][local.month - 1]} {local.year}, {local:%H:%M}"


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# -- language ---------------------------------------------------------------------------------

_LANGUAGE_RANGE = re.compile(
    r"^\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]+))?"
)


def choose_language(
    requested: str | None, accept_language: str | None, default: Language = Language.EN
) -> Language:
    """``?lang=`` when it names ru or en, else the best of them in Accept-Language, else default."""
    if requested:
        try:
            return Language(requested.strip().lower())
        except ValueError:
            pass
    best: tuple[float, int, Language] | None = None
    for position, item in enumerate((accept_language or "").split(",")[:20]):
        match = _LANGUAGE_RANGE.match(item)
        if match is None:
            continue
        try:
            language = Language(match[1].lower())
            quality = float(match[2]) if match[2] else 1.0
        except ValueError:
            continue
        if quality > 0 and (best is None or (quality, -position) > (best[0], best[1])):
            best = (quality, -position, language)
    return best[2] if best else default


# -- the form: pure checks --------------------------------------------------------------------

_EMAIL = TypeAdapter(Email)


@dataclass(frozen=True, slots=True)
class TicketForm:
    """A valid form's text: who asks, and what about."""

    name: str
    email: str
    subject: str
    description: str


def check_form(fields: Mapping[str, str]) -> tuple[TicketForm | None, dict[str, str]]:
    """The form's text checked: ``(form, {})`` when valid, else ``(None, {field: error code})``.

    Codes: ``required``, ``too_long``, ``email``; errors come in the form's field order.
    """
    values = {name: (fields.get(name) or "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    for name in FIELDS:
        value = values[name]
        if not value:
            errors[name] = "required"
        elif len(value) > MAX_LENGTH[name]:
            errors[name] = "too_long"
        elif name == "email":
            try:
                values[name] = _EMAIL.validate_python(value)
            except ValidationError:
                errors[name] = "email"
    if errors:
        return None, errors
    return TicketForm(**values), {}


@dataclass(frozen=True, slots=True)
class FileProblem:
    """Why the attachments cannot be taken: an error code, the limit, and the file if one."""

    code: str
    """``too_many_files``, ``file_too_large`` or ``files_too_large``."""
    limit: int
    """A number of files, or of bytes."""
    filename: str = ""

    @property
    def too_large(self) -> bool:
        """A problem of size (HTTP 413), not of count."""
        return self.code != "too_many_files"


def check_files(
    files: Sequence[tuple[str, int]], *, max_files: int, per_file: int, total: int
) -> FileProblem | None:
    """Attachments (name, size) within the limits, or the first problem."""
    if len(files) > max_files:
        return FileProblem("too_many_files", max_files)
    for name, size in files:
        if size > per_file:
            return FileProblem("file_too_large", per_file, name)
    if sum(size for _, size in files) > total:
        return FileProblem("files_too_large", total)
    return None


def error_message(language: Language, name: str, code: str) -> str:
    """The message shown next to a text field for an error code of ``check_form``."""
    if code == "required":
        return words(language, f"error_required_{name}")
    if code == "too_long":
        return words(language, "error_too_long", max=MAX_LENGTH[name])
    return words(language, f"error_{code}")


def files_message(language: Language, problem: FileProblem) -> str:
    """The message shown next to the attachments field."""
    limit = problem.limit if problem.code == "too_many_files" else None
    return words(
        language,
        f"error_{problem.code}",
        max=limit if limit is not None else format_size(problem.limit, language),
        name=problem.filename,
    )


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]+")
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


def clean_filename(filename: str) -> str:
    """A browser's file name without a path (old browsers send one) or control characters."""
    name = _UNSAFE_NAME.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:255] or "file"


def clean_content_type(content_type: str | None) -> str:
    """The browser's content type when it is a plain ``type/subtype``, else octet-stream."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    return value if _CONTENT_TYPE.match(value) else "application/octet-stream"


# -- the status page: what the client sees, pure ---------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One public update: when, what, and its public text if it has one."""

    at: datetime
    when: str
    title: str
    text: str | None = None
    quoted: bool = False
    """The text is someone's message (an answer, a reply, a question), not a detail."""


@dataclass(frozen=True, slots=True)
class StatusView:
    """A ticket as its client may see it: no addresses, no notes, no escalations."""

    ticket_id: str
    subject: str
    status: TicketStatus
    status_text: str
    verdict: str
    first_response: str
    resolution: str
    engineer: str
    timezone: str
    history: tuple[HistoryEntry, ...]


_PUBLIC_TEXT = (
    TicketChange.REPLIED,
    TicketChange.CLIENT_REPLIED,
    TicketChange.WAITING_ON_CLIENT,
    TicketChange.RESOLVED,
)
"""Changes whose text the client sees (the provider's answers and questions, their own
replies, the resolution). A ``note``'s text is internal and never shown."""
_PUBLIC_CHANGES = (
    *_PUBLIC_TEXT,
    TicketChange.ACKNOWLEDGED,
    TicketChange.REOPENED,
    TicketChange.APPROVED,
    TicketChange.DECLINED,
    TicketChange.PRIORITY_CHANGED,
)
"""Changes shown in the history; ``note`` and ``automatic_reply`` are not."""


def verdict_text(language: Language, scope: Scope | None, approval: str | None) -> str:
    """The scope verdict in plain words, with where approval stands for paid or excluded work."""
    if scope is None:
        return words(language, "scope_pending")
    text = words(language, f"scope_{scope.value}")
    if scope in (Scope.BILLABLE, Scope.EXCLUDED) and approval:
        text = f"{text}: {words(language, f'approval_{approval}')}"
    return text


def public_view(events: Sequence[Event], language: Language, timezone: str | None) -> StatusView:
    """The status page of a ticket's events (oldest first), in a language and a timezone.

    The timezone is the contract's; without one, the SLA's, else UTC. TicketNotFoundError when
    the events have no TicketReceived.
    """
    ticket = fold(events)
    tz = timezone or (ticket.sla.timezone if ticket.sla else "UTC")

    def when(moment: datetime) -> str:
        return format_time(moment, language, tz)

    scope = ticket.classification.scope if ticket.classification else None
    verdict = verdict_text(language, scope, ticket.approval)
    history: list[HistoryEntry] = []
    armed = assigned = False
    resolved_at: datetime | None = None

    def add(
        moment: datetime,
        key: str,
        text: str | None = None,
        *,
        quoted: bool = False,
        **values: object,
    ) -> None:
        title = words(language, key, **values)
        history.append(HistoryEntry(moment, when(moment), title, text, quoted))

    for event in events:
        if isinstance(event, TicketReceived):
            channel = words(language, f"channel_{event.channel.value}")
            add(event.occurred_at, "ev_received", channel=channel)
        elif isinstance(event, TicketClassified):
            add(event.occurred_at, "ev_classified", verdict_text(language, event.scope, None))
        elif isinstance(event, SlaArmed):
            deadlines = words(
                language,
                "deadlines_text",
                first=when(event.first_response_due),
                resolution=when(event.resolution_due),
            )
            add(event.occurred_at, "ev_rearmed" if armed else "ev_armed", deadlines)
            armed = True
        elif isinstance(event, TicketAssigned) and not assigned:
            add(event.occurred_at, "ev_assigned")  # who, never: only that someone is
            assigned = True
        elif isinstance(event, TicketUpdated) and event.change in _PUBLIC_CHANGES:
            text = ((event.text or "").strip() or None) if event.change in _PUBLIC_TEXT else None
            if event.change is TicketChange.PRIORITY_CHANGED and not event.priority:
                continue
            priority = words(language, f"priority_{event.priority.value}") if event.priority else ""
            key = f"ev_{event.change.value}"
            add(event.occurred_at, key, text, quoted=text is not None, priority=priority)
            if event.change is TicketChange.RESOLVED:
                resolved_at = event.occurred_at
            elif event.change is TicketChange.REOPENED:
                resolved_at = None

    first_response = resolution = words(language, "no_deadlines")
    if ticket.sla is not None:
        sla = ticket.sla
        first_response = (
            words(language, "given_at", when=when(sla.first_response_at))
            if sla.first_response_at
            else words(language, "due_by", when=when(sla.first_response_due))
        )
        if ticket.status is TicketStatus.RESOLVED and resolved_at is not None:
            resolution = words(language, "resolved_at", when=when(resolved_at))
        else:
            resolution = words(language, "due_by", when=when(sla.resolution_due))
    return StatusView(
        ticket_id=ticket.id,
        subject=ticket.subject,
        status=ticket.status,
        status_text=words(language, f"status_{ticket.status.value}"),
        verdict=verdict,
        first_response=first_response,
        resolution=resolution,
        engineer=words(language, "engineer_assigned" if assigned else "engineer_none"),
        timezone=tz,
        history=tuple(history),
    )


# -- signing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebSigners:
    """The form tokens and the status links, under the deployment's signing key."""

    forms: URLSafeTimedSerializer
    links: StatusLinks
    form_max_age_s: int

    @classmethod
    def build(cls, key: bytes, settings: IntakeSettings) -> "WebSigners":
        """Form tokens and status links under one key, with the settings' validities."""
        return cls(
            forms=URLSafeTimedSerializer(key, salt=_FORM_SALT),
            links=StatusLinks(key, max_age_s=settings.status_link_max_age_days * 86400),
            form_max_age_s=settings.web_form_max_age_s,
        )

    def form_token(self, idempotency_key: str) -> str:
        """The token a form render carries: its idempotency key, signed and dated."""
        return str(self.forms.dumps(idempotency_key))

    def form_token_valid(self, token: str, idempotency_key: str) -> bool:
        """True when the token signs this key and is younger than the form's validity."""
        try:
            signed = self.forms.loads(token, max_age=self.form_max_age_s)
        except BadSignature:  # also SignatureExpired
            return False
        return isinstance(signed, str) and signed == idempotency_key


def _signers(request: Request, runtime: IntakeRuntime) -> WebSigners:
    """Built on first use (reading the key may create the key file), then kept on the app."""
    signers: WebSigners | None = getattr(request.app.state, "web_signers", None)
    if signers is None:
        settings = runtime.settings
        secret = settings.signing_key.get_secret_value() if settings.signing_key else None
        key = signing_key(secret, settings.signing_key_file)
        signers = WebSigners.build(key, settings)
        request.app.state.web_signers = signers
    return signers


def _is_idempotency_key(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


# -- rendering --------------------------------------------------------------------------------

_env = Environment(
    loader=PackageLoader("opora_intake", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, language: Language, **context: Any) -> str:
    """One page of the web channel, in one language."""
    return _env.get_template(f"web/{template}").render(
        lang=language.value,
        other_lang=(Language.EN if language is Language.RU else Language.RU).value,
        t=WORDS[language],
        **context,
    )


def static_files() -> StaticFiles:
    """The web pages' stylesheet, served from the package (no CDN)."""
    return StaticFiles(packages=[("opora_intake", "static")])


@dataclass
class FormState:
    """What a form render shows: values, errors, the hidden fields."""

    values: dict[str, str] = field(default_factory=lambda: dict.fromkeys(FIELDS, ""))
    errors: dict[str, str] = field(default_factory=dict)
    form_error: str | None = None
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))


def form_page(
    language: Language,
    state: FormState,
    signers: WebSigners,
    settings: IntakeSettings,
    *,
    root: str,
) -> str:
    """The form, with the person's values and a message per field when it was refused."""
    limits = words(
        language,
        "hint_attachments",
        files=settings.web_max_files,
        per_file=format_size(settings.max_attachment_bytes, language),
        total=format_size(settings.max_attachments_bytes, language),
    )
    return render(
        "form.html",
        language,
        root=root,
        title=words(language, "form_title"),
        has_errors=bool(state.errors or state.form_error),
        values=state.values,
        errors=state.errors,
        form_error=state.form_error,
        idempotency_key=state.idempotency_key,
        form_token=signers.form_token(state.idempotency_key),
        files_allowed=settings.web_max_files > 0,
        attachments_hint=limits,
        max_length=MAX_LENGTH,
    )


def status_page(view: StatusView, language: Language, *, root: str = "../") -> str:
    """The status page of a ticket's public view."""
    return render(
        "status.html",
        language,
        root=root,
        title=words(language, "status_title", ticket=view.ticket_id),
        view=view,
        times_note=words(language, "times_in", timezone=view.timezone),
    )


def message_page(language: Language, title_key: str, text: str, *, root: str) -> str:
    """An error page naming the problem, with a way back to the form."""
    return render("message.html", language, root=root, title=words(language, title_key), text=text)


_RETRY = {"Retry-After": "5"}


def _html(
    page: str, code: int = 200, *, private: bool = False, extra: dict[str, str] | None = None
) -> HTMLResponse:
    headers = {**(PRIVATE_HEADERS if private else SAFE_HEADERS), **(extra or {})}
    return HTMLResponse(page, code, headers=headers)


# -- routes -----------------------------------------------------------------------------------


class _TooLarge(Exception):
    """The request body passed the web form's limit while it was being read."""


DRAIN_FACTOR = 4
"""A refused body up to this many times the limit is read to its end (and dropped), so that
the browser, still sending, gets the 413 page rather than a reset connection."""


class _BodyGuard:
    """Counts a request body as it is read; _TooLarge past the limit; drains what is left."""

    def __init__(self, request: Request, limit: int) -> None:
        self._receive = request.receive
        self._scope = request.scope
        self.limit = limit
        self.seen = 0
        self.done = False

    async def _next(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            self.done = not message.get("more_body", False)
        else:  # the client went away
            self.done = True
        return message

    async def receive(self) -> Message:
        """The ASGI receive the form parser reads through."""
        message = await self._next()
        if self.seen > self.limit:
            raise _TooLarge
        return message

    def request(self) -> Request:
        """The request, read through this guard."""
        return Request(self._scope, self.receive)

    async def drain(self) -> bool:
        """Read and drop the rest of the body, within DRAIN_FACTOR x the limit: True if it ended."""
        while not self.done and self.seen <= self.limit * DRAIN_FACTOR:
            await self._next()
        return self.done


def _language(request: Request, explicit: str | None = None) -> Language:
    return choose_language(
        explicit or request.query_params.get("lang"), request.headers.get("accept-language")
    )


@router.get(FORM_PATH, response_class=HTMLResponse)
async def show_form(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """The web form (the web channel for people)."""
    language = _language(request)
    signers = _signers(request, runtime)
    return _html(form_page(language, FormState(), signers, runtime.settings, root=""))


@router.post(FORM_PATH, response_class=HTMLResponse)
async def submit_form(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """A submitted form: a ticket and its number, or the form again saying what to fix."""
    settings = runtime.settings
    language = _language(request)
    if request.headers.get("sec-fetch-site") == "cross-site":
        runtime.metrics.rejected.labels("form_cross_site").inc()
        await _BodyGuard(request, settings.web_max_body_bytes).drain()
        text = words(language, "cross_site_text")
        return _html(message_page(language, "cross_site_title", text, root=""), 403)
    limit = settings.web_max_body_bytes
    guard = _BodyGuard(request, limit)
    length = request.headers.get("content-length", "")
    try:
        if length.isdigit() and int(length) > limit:
            raise _TooLarge
        form = await guard.request().form(max_files=100, max_fields=50)
    except _TooLarge:
        runtime.metrics.rejected.labels("too_large").inc()
        declared = int(length) if length.isdigit() else 0
        ended = declared <= limit * DRAIN_FACTOR and await guard.drain()
        text = words(language, "too_large_text", max=format_size(limit, language))
        return _html(
            message_page(language, "too_large_title", text, root=""),
            status.HTTP_413_CONTENT_TOO_LARGE,
            extra=None if ended else {"Connection": "close"},
        )
    except HTTPException:  # malformed multipart, too many parts
        runtime.metrics.rejected.labels("form_invalid").inc()
        await guard.drain()
        text = words(language, "bad_request_text")
        return _html(message_page(language, "bad_request_title", text, root=""), 400)
    try:
        return await _submitted(request, runtime, form)
    finally:
        await form.close()


async def _submitted(request: Request, runtime: IntakeRuntime, form: Any) -> HTMLResponse:
    settings = runtime.settings
    texts = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    language = _language(request, texts.get("lang"))
    signers = _signers(request, runtime)
    files = [
        value
        for key, value in form.multi_items()
        if key == FILES_FIELD and isinstance(value, UploadFile) and (value.filename or value.size)
    ]
    key = texts.get("idempotency_key", "")
    token_ok = _is_idempotency_key(key) and signers.form_token_valid(
        texts.get("form_token", ""), key
    )
    ticket, codes = check_form(texts)
    errors = {name: error_message(language, name, code) for name, code in codes.items()}
    problem = check_files(
        [(clean_filename(f.filename or ""), f.size or 0) for f in files],
        max_files=settings.web_max_files,
        per_file=settings.max_attachment_bytes,
        total=settings.max_attachments_bytes,
    )
    if problem is not None:
        errors[FILES_FIELD] = files_message(language, problem)
    if ticket is None or problem is not None or not token_ok:
        state = FormState(
            values={name: texts.get(name) or "" for name in FIELDS},
            errors=errors,
            form_error=None if token_ok else words(language, "error_expired"),
            idempotency_key=key if token_ok else str(uuid.uuid4()),
        )
        code = status.HTTP_422_UNPROCESSABLE_CONTENT
        if problem is not None and problem.too_large:
            code = status.HTTP_413_CONTENT_TOO_LARGE
        elif not token_ok and not errors:
            code = status.HTTP_400_BAD_REQUEST
        runtime.metrics.rejected.labels("form_invalid" if token_ok else "form_expired").inc()
        return _html(form_page(language, state, signers, runtime.settings, root=""), code)
    try:
        ticket_id, tenant, duplicate, stored = await _create(runtime, ticket, key, files)
    except (NatsError, TimeoutError, NotReadyError) as exc:
        log.warning("web form ticket not stored: %s", type(exc).__name__)
        state = FormState(
            values={name: texts.get(name) or "" for name in FIELDS},
            form_error=words(language, "error_unavailable"),
            idempotency_key=key,
        )
        page = form_page(language, state, signers, runtime.settings, root="")
        return _html(page, status.HTTP_503_SERVICE_UNAVAILABLE, extra=_RETRY)
    token = signers.links.sign(tenant, ticket_id)
    page = render(
        "received.html",
        language,
        root="",
        title=words(language, "received_title", ticket=ticket_id),
        intro=words(language, "received_intro", ticket=ticket_id, email=ticket.email),
        duplicate=duplicate,
        files=words(language, "received_files", count=stored) if stored else None,
        status_href=f"status/{token}",
    )
    return _html(page, private=True)


async def _create(
    runtime: IntakeRuntime, form: TicketForm, key: str, files: Sequence[UploadFile]
) -> tuple[str, str, bool, int]:
    """Store the ticket once per form render: ``(id, tenant, duplicate, attachments)``."""
    source_ref = f"webform:{key}"
    ticket_id, new = await runtime.ids.claim(source_ref)
    js = jetstream(runtime.broker)
    if not new:
        # A second submit of the same render: the first one's ticket, unless the first
        # died between claiming the number and storing the ticket (then this one stores it).
        first = next(
            (e for e in await ticket_events(js, ticket_id) if isinstance(e, TicketReceived)),
            None,
        )
        if first is not None:
            return ticket_id, first.tenant, True, len(first.attachments)
    tenant = runtime.contracts.book.tenant_for(form.email)
    store = AttachmentStore(js)
    refs: list[AttachmentRef] = []
    for upload in files:
        data = await upload.read()
        refs.append(
            await store.put(
                ticket_id,
                clean_filename(upload.filename or ""),
                clean_content_type(upload.content_type),
                data,
            )
        )
    event = TicketReceived(
        event_id=derive_id(ticket_id, TicketReceived.event_type()),
        occurred_at=runtime.clock(),
        tenant=tenant,
        ticket_id=ticket_id,
        channel=Channel.WEB,
        requester=Requester(email=form.email, name=form.name),
        subject=form.subject,
        body=form.description,
        source_ref=source_ref,
        attachments=tuple(refs),
    )
    ack = await publish_event(runtime.received, event)
    if not ack.duplicate:
        runtime.metrics.received.labels(Channel.WEB, tenant).inc()
        log.info(
            "ticket %s received (web form, tenant %s, %d attachments)", ticket_id, tenant, len(refs)
        )
    return ticket_id, tenant, not new, len(refs)


TokenPath = Annotated[str, Path(description="the signed token of the status link")]


@router.get("/status/{token}", response_class=HTMLResponse)
async def show_status(token: TokenPath, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """A ticket's status page: status, scope verdict, deadlines and the public updates."""
    requested = request.query_params.get("lang")
    root = "../"
    tenant = ticket_id = None
    if len(token) <= 1024:
        with contextlib.suppress(StatusLinkError):  # any bad link is the same 404
            tenant, ticket_id = _signers(request, runtime).links.verify(token)
    contract = runtime.contracts.book.get(tenant) if tenant else None
    language = contract.language if contract is not None and not requested else _language(request)
    events: list[Event] = []
    if tenant and ticket_id:
        try:
            events = await ticket_events(jetstream(runtime.broker), ticket_id, tenant=tenant)
        except (NatsError, TimeoutError, NotReadyError) as exc:
            log.warning("status page not read: %s", type(exc).__name__)
            text = words(language, "unavailable_text")
            page = message_page(language, "unavailable_title", text, root=root)
            return _html(page, 503, private=True, extra=_RETRY)
    # Only this tenant's events of this ticket, whatever the subject filter let through.
    events = [e for e in events if e.tenant == tenant and e.ticket_id == ticket_id]
    if not any(isinstance(e, TicketReceived) for e in events):
        text = words(language, "not_found_text")
        page = message_page(language, "not_found_title", text, root=root)
        return _html(page, status.HTTP_404_NOT_FOUND, private=True)
    timezone = contract.calendar.timezone if contract is not None else None
    page = status_page(public_view(events, language, timezone), language, root=root)
    return _html(page, private=True)
