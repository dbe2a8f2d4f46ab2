"""Chat button presses over real HTTP into a real NATS: the buttons the notifier posts, pressed
in Telegram, Slack and Mattermost, act on the ticket as the team member who pressed.

A local HTTP server stands in for Telegram's Bot API (answerCallbackQuery) and for Slack's
response_url. Engineers' chat ids are the demo ones of ``deploy/team.yml`` (the team the
session's NATS was seeded with).
"""

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from opora_notifier.channels import Outgoing
from opora_notifier.channels.slack import MattermostButtons, slack_payload
from opora_notifier.channels.telegram import telegram_payload
from opora_notifier.notices import Audience, Medium, Notice, Recipient, Trigger
from opora_notifier.rendering import Rendered
from opora_notifier.testing import FakeReceiver
from opora_shared.chat_buttons import ButtonSigner
from opora_shared.events import Actor, TicketUpdated
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.testing.factories import (
    make_ticket_classified,
    make_ticket_received,
    unique_ticket_id,
)
from opora_shared.testing.waiting import wait_for
from opora_shared.vocabulary import Language, TicketChange

from .test_api_tokens import Intake, serve_intake

BOT_TOKEN = "123456:test-bot-token"
TELEGRAM_SECRET = "telegram-webhook-secret_0123"
SLACK_SECRET = "slack-signing-secret-0123456789"
SIGNING_KEY = "chat-test-signing-key-0123456789"
MARIA_TELEGRAM = 700000001
MARIA_SLACK = "U07MARIA01"
LEAD_MATTERMOST = "8x1m9kq3nfgy7p4jz6r2w5tcae"


@pytest.fixture
async def bot() -> AsyncIterator[FakeReceiver]:
    server = await FakeReceiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def intake(nats_url, tmp_path, js, bot) -> AsyncIterator[Intake]:
    async with serve_intake(
        nats_url,
        tmp_path,
        js,
        telegram_bot_token=BOT_TOKEN,
        telegram_api_url=bot.url,
        telegram_webhook_secret=TELEGRAM_SECRET,
        slack_signing_secret=SLACK_SECRET,
        signing_key=SIGNING_KEY,
    ) as running:
        yield running


async def new_ticket(intake: Intake, tenant: str = "romashka") -> str:
    ticket_id = unique_ticket_id()
    broker = intake.app.state.runtime.broker
    await publish_event(broker, make_ticket_received(tenant=tenant, ticket_id=ticket_id))
    await publish_event(broker, make_ticket_classified(tenant=tenant, ticket_id=ticket_id))
    return ticket_id


async def updates(js, ticket_id: str) -> list[TicketUpdated]:
    return [e for e in await ticket_events(js, ticket_id) if isinstance(e, TicketUpdated)]


def alert(ticket_id: str, medium: Medium, tenant: str = "romashka") -> Outgoing:
    """A page as the notifier would post it to a chat (what its buttons carry is the point)."""
    notice = Notice(
        trigger=Trigger.PAGE,
        tenant=tenant,
        ticket_id=ticket_id,
        recipient=Recipient(medium, "-100777", Audience.TEAM, Language.RU),
        context={"ticket": {"open_url": f"https://support.example.com/t/{ticket_id}"}},
        occurred_at=datetime.now(UTC),
    )
    rendered = Rendered(f"[#{ticket_id}] P1", "text", "<p>html</p>", f"P1 #{ticket_id}")
    return Outgoing(notice, notice.notification_id, rendered)


# -- Telegram ---------------------------------------------------------------------------------


def buttons(ticket_id: str) -> dict[str, str]:
    """The callback data of the notifier's Telegram buttons for a ticket, by label."""
    keyboard = telegram_payload(alert(ticket_id, Medium.TELEGRAM))["reply_markup"]
    return {
        b["text"]: b["callback_data"]
        for row in keyboard["inline_keyboard"]
        for b in row
        if "callback_data" in b
    }


def update(data: str, *, query: str, user_id=MARIA_TELEGRAM, username=None) -> dict:
    return {
        "update_id": int(time.time() * 1000) % 2**31,
        "callback_query": {
            "id": query,
            "from": {"id": user_id, "is_bot": False, "first_name": "X", "username": username},
            "chat_instance": "42",
            "message": {"message_id": 1, "date": 0, "chat": {"id": -100777, "type": "group"}},
            "data": data,
        },
    }


async def press_telegram(intake: Intake, body: dict, secret: str | None = TELEGRAM_SECRET):
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    async with intake.http() as http:
        return await http.post("/v1/chat/telegram", json=body, headers=headers)


def answers(bot: FakeReceiver) -> list[dict]:
    return [r.json() for r in bot.to(f"/bot{BOT_TOKEN}/answerCallbackQuery")]


class TestTelegram:
    async def test_acknowledge_acts_as_the_engineer_and_a_retried_update_records_once(
        self, intake, bot, js
    ):
        ticket_id = await new_ticket(intake)
        body = update(buttons(ticket_id)["Принять"], query=f"cb-{ticket_id}")

        first = await press_telegram(intake, body)
        assert first.status_code == 200, first.text
        assert first.json()["outcome"] == "acted"
        (event,) = await updates(js, ticket_id)
        assert event.change is TicketChange.ACKNOWLEDGED
        assert event.actor == Actor(kind="engineer", id="maria")
        assert str(event.event_id) == first.json()["event_id"]
        assert answers(bot) == [
            {
                "callback_query_id": f"cb-{ticket_id}",
                "text": f"Заявка #{ticket_id} принята в работу (Мария).",
            }
        ]

        again = await press_telegram(intake, body)  # Telegram retries the same update
        assert again.status_code == 200
        assert again.json()["outcome"] == "duplicate"
        assert len(await updates(js, ticket_id)) == 1
        assert len(answers(bot)) == 2

    async def test_resolve_by_username_then_a_later_press_is_refused(self, intake, bot, js):
        ticket_id = await new_ticket(intake)
        data = buttons(ticket_id)
        resolved = await press_telegram(
            intake, update(data["Решено"], query=f"r-{ticket_id}", user_id=1, username="opora_duty")
        )
        assert resolved.json()["outcome"] == "acted"
        late = await press_telegram(intake, update(data["Принять"], query=f"a-{ticket_id}"))
        assert late.json()["outcome"] == "refused"
        assert (
            late.json()["text"]
            == f"Заявка #{ticket_id} уже решена: откройте её снова через API или письмом."
        )
        (event,) = await updates(js, ticket_id)
        assert (event.change, event.actor.id) == (TicketChange.RESOLVED, "duty")
        assert answers(bot)[-1]["text"] == late.json()["text"]

    async def test_a_stranger_is_told_how_to_be_added_and_nothing_is_recorded(
        self, intake, bot, js
    ):
        ticket_id = await new_ticket(intake)
        body = update(
            buttons(ticket_id)["Принять"], query=f"s-{ticket_id}", user_id=555, username="intruder"
        )
        response = await press_telegram(intake, body)
        assert response.status_code == 200
        assert response.json()["outcome"] == "refused"
        assert "Telegram user id 555" in response.json()["text"]
        assert await updates(js, ticket_id) == []
        assert answers(bot)[-1]["text"] == response.json()["text"]

    async def test_an_unknown_ticket_is_refused_clearly(self, intake, js):
        missing = unique_ticket_id()
        response = await press_telegram(
            intake, update(f"opora:resolve:{missing}", query=f"m-{missing}")
        )
        assert response.json() == {
            "outcome": "refused",
            "text": f"Заявки #{missing} нет.",
            "event_id": None,
        }
        assert await ticket_events(js, missing) == []

    async def test_without_the_secret_token_nothing_happens(self, intake, bot, js):
        ticket_id = await new_ticket(intake)
        body = update(buttons(ticket_id)["Решено"], query=f"x-{ticket_id}")
        for secret in (None, "wrong-secret-0123456789"):
            response = await press_telegram(intake, body, secret=secret)
            assert response.status_code == 401
        assert await updates(js, ticket_id) == []
        assert answers(bot) == []

    async def test_other_updates_are_ignored(self, intake, bot):
        response = await press_telegram(
            intake, {"update_id": 9, "message": {"message_id": 1, "text": "hi"}}
        )
        assert response.json()["outcome"] == "ignored"
        foreign = await press_telegram(intake, update("poll:yes", query="other-bot"))
        assert foreign.json()["outcome"] == "ignored"
        assert [a["callback_query_id"] for a in answers(bot)] == ["other-bot"]


# -- Slack ------------------------------------------------------------------------------------


def slack_press(
    ticket_id: str, action: str, *, value: str | None = None, user=MARIA_SLACK, response_url=None
):
    """The form body Slack posts when a button of the notifier's blocks is pressed."""
    elements = slack_payload(alert(ticket_id, Medium.SLACK))["blocks"][1]["elements"]
    button = next(e for e in elements if e["action_id"] == action)
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "maria", "team_id": "T01"},
        "team": {"id": "T01", "domain": "opora"},
        "api_app_id": "A01",
        "trigger_id": f"trigger-{ticket_id}",
        "response_url": response_url,
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": f"opora-{ticket_id}",
                "value": value or button["value"],
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


async def post_slack(
    intake: Intake, body: bytes, *, timestamp: int | None = None, secret=SLACK_SECRET
):
    ts = str(timestamp if timestamp is not None else int(time.time()))
    mac = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={mac}",
    }
    async with intake.http() as http:
        return await http.post("/v1/chat/slack", content=body, headers=headers)


class TestSlack:
    async def test_a_signed_press_acts_and_the_presser_is_told_ephemerally(self, intake, bot, js):
        ticket_id = await new_ticket(intake)
        body = slack_press(
            ticket_id, "opora_ack", response_url=f"{bot.url}/actions/T01/{ticket_id}"
        )
        response = await post_slack(intake, body)
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "acted"
        (event,) = await updates(js, ticket_id)
        assert (event.change, event.actor.id) == (TicketChange.ACKNOWLEDGED, "maria")
        (told,) = await wait_for(
            lambda: bot.to(f"/actions/T01/{ticket_id}"), message="ephemeral answer"
        )
        assert told.json() == {
            "response_type": "ephemeral",
            "replace_original": False,
            "text": f"Заявка #{ticket_id} принята в работу (Мария).",
        }

    async def test_a_stale_or_wrong_signature_is_refused(self, intake, js):
        ticket_id = await new_ticket(intake)
        body = slack_press(ticket_id, "opora_resolve")
        stale = await post_slack(intake, body, timestamp=int(time.time()) - 301)
        forged = await post_slack(intake, body, secret="not-the-signing-secret")
        assert (stale.status_code, forged.status_code) == (401, 401)
        assert await updates(js, ticket_id) == []

    async def test_a_button_naming_another_tenant_records_nothing(self, intake, js):
        ticket_id = await new_ticket(intake, tenant="romashka")
        body = slack_press(ticket_id, "opora_resolve", value=f"vector:{ticket_id}")
        response = await post_slack(intake, body)
        assert response.json()["outcome"] == "refused"
        assert response.json()["text"] == f"Заявки #{ticket_id} нет (vector)."
        assert await updates(js, ticket_id) == []

    async def test_a_stranger_in_slack_records_nothing(self, intake, js):
        ticket_id = await new_ticket(intake)
        response = await post_slack(intake, slack_press(ticket_id, "opora_ack", user="U0STRANGER"))
        assert response.json()["outcome"] == "refused"
        assert "Slack user id U0STRANGER" in response.json()["text"]
        assert await updates(js, ticket_id) == []


# -- Mattermost -------------------------------------------------------------------------------


def mattermost_context(ticket_id: str, label: str, key: str = SIGNING_KEY) -> dict:
    """The integration context of a button of the notifier's Mattermost post."""
    buttons_ = MattermostButtons(
        url="https://support.example.com/v1/chat/mattermost", sign=ButtonSigner(key.encode()).sign
    )
    (attachment,) = slack_payload(alert(ticket_id, Medium.SLACK), buttons_)["attachments"]
    action = next(a for a in attachment["actions"] if a["name"] == label)
    return action["integration"]["context"]


async def post_mattermost(intake: Intake, context: dict, *, user_id=LEAD_MATTERMOST, trigger="t"):
    body = {
        "user_id": user_id,
        "user_name": "lead",
        "channel_id": "c1",
        "team_id": "tm1",
        "post_id": "p1",
        "trigger_id": trigger,
        "type": "",
        "data_source": "",
        "context": context,
    }
    async with intake.http() as http:
        return await http.post("/v1/chat/mattermost", json=body)


class TestMattermost:
    async def test_a_press_acts_as_the_member_and_answers_only_them(self, intake, js):
        ticket_id = await new_ticket(intake)
        response = await post_mattermost(
            intake, mattermost_context(ticket_id, "Решено"), trigger=f"t-{ticket_id}"
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "ephemeral_text": f"Заявка #{ticket_id} решена (Руководитель группы).",
            "outcome": "acted",
        }
        (event,) = await updates(js, ticket_id)
        assert (event.change, event.actor.id) == (TicketChange.RESOLVED, "lead")

    async def test_a_forged_button_is_refused(self, intake, js):
        ticket_id = await new_ticket(intake)
        for context in (
            {"token": "forged"},
            {},
            mattermost_context(ticket_id, "Принять", key="another-deployments-key-0123456"),
        ):
            response = await post_mattermost(intake, context)
            assert response.status_code == 401, context
        assert await updates(js, ticket_id) == []

    async def test_a_stranger_is_answered_and_nothing_is_recorded(self, intake, js):
        ticket_id = await new_ticket(intake)
        response = await post_mattermost(
            intake, mattermost_context(ticket_id, "Принять"), user_id="zzzz"
        )
        assert response.json()["outcome"] == "refused"
        assert "Mattermost user id zzzz" in response.json()["ephemeral_text"]
        assert await updates(js, ticket_id) == []


class TestNotConfigured:
    async def test_telegram_and_slack_are_off_without_their_secrets(self, nats_url, tmp_path, js):
        async with serve_intake(nats_url, tmp_path, js) as plain, plain.http() as http:
            telegram = await http.post(
                "/v1/chat/telegram",
                json=update("opora:ack:1", query="q"),
                headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
            )
            slack = await http.post("/v1/chat/slack", content=b"payload=%7B%7D")
        assert (telegram.status_code, slack.status_code) == (403, 403)
        assert "OPORA_TELEGRAM_WEBHOOK_SECRET" in telegram.json()["detail"]
        assert "OPORA_SLACK_SIGNING_SECRET" in slack.json()["detail"]
