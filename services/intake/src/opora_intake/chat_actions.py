"""Chat button presses, understood: who pressed what on which ticket, and what it records. Pure.

The notifier's chat alerts carry *Acknowledge* and *Resolve* buttons (``opora_shared.
chat_buttons``). A press reaches the intake from Telegram (a bot webhook ``Update`` with a
``callback_query``), Slack (an interactivity request, ``block_actions``, signed with the app's
signing secret) or Mattermost (a button integration, whose context holds a token we signed).
Each becomes a ``Press``; ``decide`` turns a press into the same ``ticket.updated`` an
engineer's ``#ack`` / ``#resolve`` mail records (actor ``{kind: engineer, id: <member>}``), or
into a refusal that says why, in the presser's language.

- **Who**: the platform's user id must be a team member's ``chat`` handle in the team file
  (``telegram_user_id``, else ``telegram_username``; ``slack_user_id`` for Slack and
  Mattermost). Anyone else is told how to be added, and nothing is recorded.
- **Which ticket**: the ticket must exist, in the button's tenant when the button names one
  (Slack, Mattermost); a resolved ticket is neither acknowledged nor resolved again.
- **Once**: the event id is derived from the platform's id of the press (Telegram's callback
  query id, Slack's action timestamp, Mattermost's trigger id) and the verb, so a retried
  webhook stores nothing new (JetStream deduplicates by ``Nats-Msg-Id``) and is answered as
  the first was.

Nothing here reads the network, NATS or the clock; the routes (``chat_api.py``) do.
"""

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field

from opora_intake.errors import ChatPayloadError
from opora_shared.chat_buttons import (
    ButtonSigner,
    ChatVerb,
    parse_slack_action,
    parse_telegram_callback,
)
from opora_shared.errors import TicketNotFoundError
from opora_shared.events import Actor, Event, TicketUpdated, derive_id
from opora_shared.team import Engineer, Person, Team
from opora_shared.tickets import fold
from opora_shared.vocabulary import Language, TicketStatus

ChatMedium = Literal["telegram", "slack", "mattermost"]
Outcome = Literal["acted", "duplicate", "refused", "ignored"]

SLACK_MAX_SKEW_S = 300
"""A Slack request signed longer ago than this (or ahead of our clock) is refused: a replay."""
TELEGRAM_ANSWER_MAX = 200
"""answerCallbackQuery shows at most this many characters."""


# -- the platforms' requests (tolerant: platforms add fields over time) ----------------------


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class TelegramUser(_Tolerant):
    """Who pressed (Telegram's ``User``)."""

    id: int
    username: str | None = Field(default=None, max_length=64)
    language_code: str | None = Field(default=None, max_length=35)


class TelegramCallbackQuery(_Tolerant):
    """A press of an inline keyboard button (Telegram's ``CallbackQuery``)."""

    id: str = Field(min_length=1, max_length=64)
    from_: TelegramUser = Field(alias="from")
    data: str | None = Field(default=None, max_length=64)


class TelegramUpdate(_Tolerant):
    """What Telegram posts to the bot's webhook (only button presses matter here)."""

    update_id: int
    callback_query: TelegramCallbackQuery | None = None


class MattermostAction(_Tolerant):
    """What a Mattermost server posts when a message button is pressed."""

    user_id: str = Field(min_length=1, max_length=64)
    user_name: str | None = Field(default=None, max_length=64)
    post_id: str | None = Field(default=None, max_length=64)
    trigger_id: str | None = Field(default=None, max_length=2048)
    context: dict[str, Any] = Field(
        default_factory=dict, description="the button's integration context: {token}"
    )


# -- a press ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Press:
    """One button press, whoever's platform it came from."""

    medium: ChatMedium
    verb: ChatVerb
    ticket_id: str
    tenant: str | None
    """The tenant the button names; None when it names none (Telegram's callback data)."""
    user_id: str
    username: str | None
    press_id: str
    """The platform's id of this press: a retried delivery carries the same."""
    language: Language | None = None
    """The presser's language as the platform tells it (for a stranger's answer)."""

    @property
    def event_id(self) -> uuid.UUID:
        """The id of the event a press records: the same for every delivery of one press."""
        return derive_id("chat", self.medium, self.press_id, self.verb.value)


def telegram_press(query: TelegramCallbackQuery) -> Press | None:
    """The press of one of our Telegram buttons, or None (another bot's data)."""
    parsed = parse_telegram_callback(query.data)
    if parsed is None:
        return None
    verb, ticket_id = parsed
    code = (query.from_.language_code or "").lower()
    return Press(
        medium="telegram",
        verb=verb,
        ticket_id=ticket_id,
        tenant=None,
        user_id=str(query.from_.id),
        username=query.from_.username,
        press_id=query.id,
        language=Language.RU if code.startswith("ru") else Language.EN,
    )


def slack_signature_ok(
    secret: bytes, timestamp: str | None, body: bytes, signature: str | None, *, now: float
) -> bool:
    """Slack's v0 signature: HMAC-SHA256 of ``v0:<timestamp>:<raw body>``, compared in constant
    time, from a request signed within ``SLACK_MAX_SKEW_S`` of ``now``."""
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > SLACK_MAX_SKEW_S:
        return False
    mac = hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={mac}", signature.strip())


@dataclass(frozen=True, slots=True)
class SlackRequest:
    """A Slack interactivity request: the press (None: not one of our buttons) and where to
    answer the presser."""

    press: Press | None
    response_url: str | None


def slack_request(body: bytes) -> SlackRequest:
    """Read a Slack interactivity request (``payload=<JSON>``, form-encoded)."""
    try:
        form = parse_qs(body.decode(), strict_parsing=False, max_num_fields=10)
        data = json.loads(form["payload"][0])
    except (UnicodeDecodeError, KeyError, IndexError, ValueError) as exc:
        msg = "not a Slack interactivity request: the form needs a JSON 'payload'"
        raise ChatPayloadError(msg) from exc
    if not isinstance(data, dict):
        msg = "the Slack payload is not a JSON object"
        raise ChatPayloadError(msg)
    response_url = data.get("response_url")
    answer_to = response_url if isinstance(response_url, str) and response_url else None
    user = data.get("user")
    actions = data.get("actions")
    if data.get("type") != "block_actions" or not isinstance(actions, list) or not actions:
        return SlackRequest(None, answer_to)
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"]:
        msg = "the Slack payload has no user.id"
        raise ChatPayloadError(msg)
    action = actions[0] if isinstance(actions[0], dict) else {}
    parsed = parse_slack_action(_text(action.get("action_id")), _text(action.get("value")))
    if parsed is None:
        return SlackRequest(None, answer_to)
    verb, tenant, ticket_id = parsed
    team = data.get("team")
    team_id = _text(team.get("id")) if isinstance(team, dict) else None
    stamp = _text(action.get("action_ts")) or _text(data.get("trigger_id")) or ""
    return SlackRequest(
        Press(
            medium="slack",
            verb=verb,
            ticket_id=ticket_id,
            tenant=tenant,
            user_id=user["id"][:64],
            username=_text(user.get("username")),
            press_id=f"{team_id or ''}:{user['id'][:64]}:{stamp[:100]}",
        ),
        answer_to,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def mattermost_press(action: MattermostAction, signer: ButtonSigner) -> Press:
    """The press a Mattermost request carries; ChatButtonError when its token is forged."""
    claim = signer.verify(str(action.context.get("token", ""))[:2048])
    press_id = action.trigger_id or f"{action.post_id or ''}:{action.user_id}"
    return Press(
        medium="mattermost",
        verb=claim.verb,
        ticket_id=claim.ticket_id,
        tenant=claim.tenant,
        user_id=action.user_id,
        username=action.user_name,
        press_id=press_id,
    )


# -- who pressed, and what it records ---------------------------------------------------------


def member_of(team: Team, press: Press) -> Engineer | Person | None:
    """The team member whose chat handle pressed, or None."""
    if press.medium == "telegram":
        return team.member_by_telegram(press.user_id, press.username)
    return team.member_by_slack(press.user_id)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a press comes to: the event to publish (if any) and what the presser is told."""

    outcome: Outcome
    text: str
    event: TicketUpdated | None = None


_TEXTS: dict[Language, dict[str, str]] = {
    Language.RU: {
        "ack": "Заявка #{ticket} принята в работу ({name}).",
        "resolve": "Заявка #{ticket} решена ({name}).",
        "resolved": "Заявка #{ticket} уже решена: откройте её снова через API или письмом.",
        "missing": "Заявки #{ticket} нет{where}.",
        "stranger": "Opora вас не знает: попросите добавить ваш {what} {user} в файл команды "
        "(chat.{field}).",
        "foreign": "Эта кнопка не от Opora.",
        "no_team": "Файл команды не загружен: действовать из чата пока нельзя.",
    },
    Language.EN: {
        "ack": "Ticket #{ticket} acknowledged ({name}).",
        "resolve": "Ticket #{ticket} resolved ({name}).",
        "resolved": "Ticket #{ticket} is already resolved: reopen it by mail or over the API.",
        "missing": "There is no ticket #{ticket}{where}.",
        "stranger": "Opora does not know you: ask for your {what} {user} to be added to the "
        "team file (chat.{field}).",
        "foreign": "This button is not Opora's.",
        "no_team": "No team file is loaded: nobody can act from chat yet.",
    },
}
_HANDLES = {
    "telegram": ("Telegram user id", "telegram_user_id"),
    "slack": ("Slack user id", "slack_user_id"),
    "mattermost": ("Mattermost user id", "slack_user_id"),
}


def say(key: str, language: Language | None, **values: str) -> str:
    """One of the answers, in a language (English when unknown)."""
    return _TEXTS[language or Language.EN][key].format(**values)


def stranger(press: Press) -> Verdict:
    """The answer to someone the team file does not know: how to be added."""
    what, field = _HANDLES[press.medium]
    text = say("stranger", press.language, what=what, user=press.user_id[:64], field=field)
    return Verdict("refused", text)


def decide(
    press: Press, member: Engineer | Person, events: list[Event], *, now: datetime
) -> Verdict:
    """What a team member's press records on the ticket, given its events (oldest first)."""
    language = member.language
    where = f" ({press.tenant})" if press.tenant else ""
    missing = Verdict("refused", say("missing", language, ticket=press.ticket_id, where=where))
    if not events or (press.tenant is not None and events[0].tenant != press.tenant):
        return missing
    try:
        view = fold(events)
    except TicketNotFoundError:
        return missing
    done = say(press.verb.value, language, ticket=view.id, name=member.name or member.id)
    event_id = press.event_id
    if any(e.event_id == event_id for e in events):
        return Verdict("duplicate", done)  # a retried delivery of a press already recorded
    if view.status is TicketStatus.RESOLVED:
        return Verdict("refused", say("resolved", language, ticket=view.id))
    event = TicketUpdated(
        event_id=event_id,
        occurred_at=now,
        tenant=view.tenant,
        ticket_id=view.id,
        change=press.verb.change,
        actor=Actor(kind="engineer", id=member.id),
    )
    return Verdict("acted", done, event)
