"""What the chat channels and the webhook post, built from a real page."""

from datetime import UTC, datetime

import pytest

from opora_notifier.channels import Outgoing
from opora_notifier.channels.slack import slack_payload
from opora_notifier.channels.telegram import telegram_payload
from opora_notifier.channels.webhook import webhook_body
from opora_notifier.notices import Medium
from opora_notifier.planning import Planner, Reach
from opora_notifier.rendering import Renderer
from opora_shared.team import ChatHandles
from opora_shared.vocabulary import Priority


@pytest.fixture
def page_to(team, ticket, romashka, links):
    def build(medium):
        duty = team.duty().model_copy(
            update={"chat": ChatHandles(telegram_chat_id="-100777", slack_channel="#noc")}
        )
        with_chat = team.model_copy(
            update={"engineers": tuple(duty if e.id == "duty" else e for e in team.engineers)}
        )
        planner = Planner(
            team=with_chat, reach=Reach(telegram=True, slack=True, webhook=True), links=links
        )
        ticket.received().classified(priority=Priority.P1)
        for notice in planner.armed(ticket.facts, romashka, ticket.armed()):
            if notice.recipient.medium is medium:
                return Outgoing(notice, notice.notification_id, Renderer().render(notice))
        raise AssertionError(medium)

    return build


class TestTelegram:
    def test_send_message_with_acknowledge_resolve_and_status_buttons(self, page_to):
        payload = telegram_payload(page_to(Medium.TELEGRAM))
        assert payload["chat_id"] == "-100777"
        assert payload["text"].startswith("P1 #1042 ООО «Ромашка»: Принтер не печатает")
        (ack, resolve), (status,) = payload["reply_markup"]["inline_keyboard"]
        assert (ack["text"], ack["callback_data"]) == ("Принять", "opora:ack:1042")
        assert (resolve["text"], resolve["callback_data"]) == ("Решено", "opora:resolve:1042")
        assert status["url"] == "https://support.example.com/tickets/romashka/1042"
        assert all(len(b.get("callback_data", "").encode()) <= 64 for b in (ack, resolve))


class TestSlack:
    def test_blocks_with_buttons_and_a_plain_text_for_mattermost(self, page_to):
        payload = slack_payload(page_to(Medium.SLACK))
        assert payload["channel"] == "#noc"
        assert payload["text"].endswith("https://support.example.com/tickets/romashka/1042")
        section, actions = payload["blocks"]
        assert section["text"]["type"] == "mrkdwn"
        ids = [e["action_id"] for e in actions["elements"]]
        assert ids == ["opora_ack", "opora_resolve", "opora_open"]
        assert actions["elements"][0]["value"] == "romashka:1042"

    def test_markup_characters_are_escaped_for_mrkdwn(self, page_to):
        out = page_to(Medium.SLACK)
        out = Outgoing(
            out.notice,
            out.notification_id,
            type(out.rendered)("s", "t", "h", "a <b> & c"),
        )
        assert slack_payload(out)["blocks"][0]["text"]["text"] == "a &lt;b&gt; &amp; c"


class TestWebhook:
    def test_the_body_names_the_notification_ticket_and_trigger(self, page_to):
        out = page_to(Medium.WEBHOOK)
        body = webhook_body(out, sent_at=datetime(2026, 11, 26, 7, 0, 1, tzinfo=UTC))
        assert body["notification_id"] == out.notification_id
        assert body["trigger"] == "page"
        assert body["urgent"] is True
        assert body["ticket"] == {
            "id": "1042",
            "subject": "Принтер не печатает",
            "priority": "P1",
            "category": "printing",
            "scope": "included",
            "url": "https://support.example.com/tickets/romashka/1042",
        }
        assert body["subject"] == "[#1042] P1 ООО «Ромашка»: Принтер не печатает"
