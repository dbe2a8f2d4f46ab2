"""Chat button presses over HTTP: Telegram's bot webhook, Slack's interactivity URL and
Mattermost's button integrations. Thin: authenticate, read the press (``chat_actions``), look
the ticket up, publish what ``decide`` says, answer the person who pressed.

Each platform proves itself its own way before a press is looked at: Telegram sends the
webhook's secret token in ``X-Telegram-Bot-Api-Secret-Token``; Slack signs the raw body with
the app's signing secret (``X-Slack-Signature``, refused when older than 5 minutes);
Mattermost buttons carry a token Opora signed when it posted them. A request that fails
answers 401; a platform whose secret is not configured, 403. A press that is understood but
refused (a stranger, no such ticket, already resolved) answers 200 with the reason, which the
person sees: Telegram and Slack would otherwise retry, or show a bare error.

NATS unavailable answers 503 and records nothing: Telegram retries the update later, and the
press's event id (derived from the platform's id of the press) makes the retry store it once.
"""

import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Header, HTTPException, Request, status

from opora_intake.api import RuntimeDep, unavailable
from opora_intake.api_models import ChatActionAnswer, MattermostAnswer, Problem
from opora_intake.chat_actions import (
    MattermostAction,
    Press,
    TelegramUpdate,
    Verdict,
    decide,
    mattermost_press,
    member_of,
    say,
    slack_request,
    slack_signature_ok,
    stranger,
    telegram_press,
)
from opora_intake.errors import NATS_UNAVAILABLE, ChatPayloadError
from opora_intake.runtime import IntakeRuntime
from opora_shared.chat_buttons import ChatButtonError
from opora_shared.errors import ContractError
from opora_shared.nats.broker import jetstream
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event

log = logging.getLogger(__name__)

router = APIRouter(tags=["chat"])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "the request is not the platform's (secret, signature)"},
    403: {"model": Problem, "description": "this platform is not configured"},
    503: {"model": Problem, "description": "NATS unavailable: nothing recorded, retry"},
}


def _unauthenticated(runtime: IntakeRuntime, medium: str, detail: str) -> HTTPException:
    runtime.metrics.chat_actions.labels(medium, "unauthenticated").inc()
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail)


def _telegram_auth(
    runtime: RuntimeDep,
    secret: Annotated[
        str | None, Header(alias="X-Telegram-Bot-Api-Secret-Token", max_length=256)
    ] = None,
) -> None:
    """401 unless the webhook's secret token came with the request; 403 when none is set."""
    configured = runtime.settings.telegram_webhook_secret
    if configured is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "the Telegram webhook is not configured (OPORA_TELEGRAM_WEBHOOK_SECRET)",
        )
    expected = configured.get_secret_value().encode()
    if secret is None or not hmac.compare_digest(secret.encode(), expected):
        raise _unauthenticated(runtime, "telegram", "missing or wrong secret token")


async def act(runtime: IntakeRuntime, press: Press) -> Verdict:
    """Decide a press against the team and the ticket, and record what it calls for."""
    try:
        team = runtime.contracts.team
    except ContractError:
        verdict = Verdict("refused", say("no_team", press.language))
    else:
        member = member_of(team, press)
        if member is None:
            verdict = stranger(press)
        else:
            try:
                events = await ticket_events(jetstream(runtime.broker), press.ticket_id)
                verdict = decide(press, member, events, now=runtime.clock())
                if verdict.event is not None:
                    ack = await publish_event(runtime.broker, verdict.event)
                    if ack.duplicate:  # two deliveries of one press raced: one is stored
                        verdict = Verdict("duplicate", verdict.text, verdict.event)
            except NATS_UNAVAILABLE as exc:
                log.warning("chat press not recorded: %s", type(exc).__name__)
                raise unavailable("the ticket store is unavailable") from exc
            log.info(
                "ticket %s: %s pressed %s on %s: %s",
                press.ticket_id,
                member.id,
                press.verb.value,
                press.medium,
                verdict.outcome,
            )
    runtime.metrics.chat_actions.labels(press.medium, verdict.outcome).inc()
    return verdict


def _answer(verdict: Verdict) -> ChatActionAnswer:
    event_id = str(verdict.event.event_id) if verdict.event is not None else None
    return ChatActionAnswer(outcome=verdict.outcome, text=verdict.text, event_id=event_id)


@router.post(
    "/v1/chat/telegram",
    response_model=ChatActionAnswer,
    responses=_REFUSALS,
    dependencies=[Depends(_telegram_auth)],
)
async def telegram_webhook(update: TelegramUpdate, runtime: RuntimeDep) -> ChatActionAnswer:
    """The Telegram bot's webhook (``setWebhook`` with ``secret_token``): a press of an alert's
    *Acknowledge* or *Resolve* button acts on the ticket as the team member whose
    ``chat.telegram_user_id`` pressed it, and is answered with ``answerCallbackQuery``.

    Other updates (messages to the bot) are ignored. A retried update records nothing new.
    """
    query = update.callback_query
    if query is None:
        return ChatActionAnswer(outcome="ignored", text="")
    press = telegram_press(query)
    if press is None:
        runtime.metrics.chat_actions.labels("telegram", "ignored").inc()
        verdict = Verdict("ignored", say("foreign", None))
    else:
        verdict = await act(runtime, press)
    if runtime.chat is not None:
        await runtime.chat.telegram(query.id, verdict.text)
    return _answer(verdict)


@router.post(
    "/v1/chat/slack",
    response_model=ChatActionAnswer,
    responses={**_REFUSALS, 400: {"model": Problem, "description": "not Slack's payload shape"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["payload"],
                        "properties": {
                            "payload": {
                                "type": "string",
                                "description": "the interaction as JSON (block_actions)",
                            }
                        },
                    }
                }
            },
        }
    },
)
async def slack_interactivity(
    request: Request,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    timestamp: Annotated[
        str | None, Header(alias="X-Slack-Request-Timestamp", max_length=20)
    ] = None,
    signature: Annotated[str | None, Header(alias="X-Slack-Signature", max_length=200)] = None,
) -> ChatActionAnswer:
    """The Slack app's interactivity request URL: a press of an alert's *Acknowledge* or
    *Resolve* button acts on the ticket as the team member whose ``chat.slack_user_id``
    pressed it; the person is told the outcome by an ephemeral message (``response_url``).

    The raw body must carry Slack's v0 signature made within the last 5 minutes.
    """
    secret = runtime.settings.slack_signing_secret
    if secret is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Slack interactivity is not configured (OPORA_SLACK_SIGNING_SECRET)",
        )
    body = await request.body()
    key = secret.get_secret_value().encode()
    if not slack_signature_ok(key, timestamp, body, signature, now=runtime.clock().timestamp()):
        raise _unauthenticated(runtime, "slack", "missing, wrong or stale Slack signature")
    try:
        parsed = slack_request(body)
    except ChatPayloadError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if parsed.press is None:
        runtime.metrics.chat_actions.labels("slack", "ignored").inc()
        return ChatActionAnswer(outcome="ignored", text="")
    verdict = await act(runtime, parsed.press)
    if parsed.response_url and runtime.chat is not None:
        # after the answer: Slack wants its 200 within 3 seconds
        background.add_task(runtime.chat.slack, parsed.response_url, verdict.text)
    return _answer(verdict)


@router.post(
    "/v1/chat/mattermost",
    response_model=MattermostAnswer,
    responses={
        401: {"model": Problem, "description": "the button's token is forged or expired"},
        503: _REFUSALS[503],
    },
)
async def mattermost_action(body: MattermostAction, runtime: RuntimeDep) -> MattermostAnswer:
    """Mattermost's message button integration (the notifier posts the buttons with
    ``OPORA_SLACK_WEBHOOK_KIND=mattermost``): a press acts on the ticket as the team member
    whose ``chat.slack_user_id`` is the Mattermost user id; the answer is shown to them only.

    The button's context carries a token Opora signed for that ticket and verb; any other
    answers 401.
    """
    if runtime.buttons is None:
        raise unavailable("the intake is starting")
    try:
        press = mattermost_press(body, runtime.buttons)
    except ChatButtonError as exc:
        raise _unauthenticated(runtime, "mattermost", str(exc)) from None
    verdict = await act(runtime, press)
    return MattermostAnswer(ephemeral_text=verdict.text, outcome=verdict.outcome)
