"""What the chat channels and the webhook post, built from a real page."""

from datetime import UTC, date, datetime

import pytest

from opora_notifier.channels import Outgoing
from opora_notifier.channels.slack import MattermostButtons, slack_payload
from opora_notifier.channels.telegram import telegram_payload
from opora_notifier.channels.webhook import webhook_body
from opora_notifier.digest import bundles
from opora_notifier.notices import Medium
from opora_notifier.planning import Planner, Reach
from opora_notifier.rendering import Renderer
from opora_shared.chat_buttons import ButtonSigner, ChatVerb
from opora_shared.contracts import DigestPolicy
from opora_shared.team import ChatHandles
from opora_shared.ticket_index import summarize
from opora_shared.tickets import fold
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


class TestMattermost:
    def test_attachment_buttons_post_a_signed_token_to_the_intake(self, page_to):
        signer = ButtonSigner(b"unit-test-signing-key-0123456789")
        buttons = MattermostButtons(
            url="https://support.example.com/v1/chat/mattermost", sign=signer.sign
        )
        payload = slack_payload(page_to(Medium.SLACK), buttons)
        assert payload["channel"] == "#noc"
        assert "blocks" not in payload  # Mattermost ignores them; the text carries the link
        assert payload["text"].endswith("https://support.example.com/tickets/romashka/1042")
        (attachment,) = payload["attachments"]
        ack, resolve = attachment["actions"]
        assert [ack["id"], resolve["id"]] == ["oporaack", "oporaresolve"]
        assert all(a["id"].isalnum() for a in (ack, resolve))
        assert (ack["name"], resolve["name"]) == ("Принять", "Решено")
        for action, verb in ((ack, ChatVerb.ACK), (resolve, ChatVerb.RESOLVE)):
            assert action["integration"]["url"] == "https://support.example.com/v1/chat/mattermost"
            claim = signer.verify(action["integration"]["context"]["token"])
            assert (claim.tenant, claim.ticket_id, claim.verb) == ("romashka", "1042", verb)


class TestDigestPayloads:
    @pytest.fixture
    def digest_out(self, team, make_ticket, romashka, links):
        maria = team.engineer("maria").model_copy(
            update={"chat": ChatHandles(telegram_chat_id="-100888", slack_channel="@maria")}
        )
        with_chat = team.model_copy(
            update={"engineers": tuple(maria if e.id == "maria" else e for e in team.engineers)}
        )
        planner = Planner(team=with_chat, reach=Reach(telegram=True, slack=True), links=links)
        ticket = make_ticket(ticket_id="601").received()
        ticket.classified(priority=Priority.P3).assigned("maria")
        found = bundles([summarize(fold(ticket.events), ticket.events)], DigestPolicy(), with_chat)
        notices = planner.digest(
            romashka, found, date(2026, 11, 26), datetime(2026, 11, 26, 6, tzinfo=UTC)
        )
        assert {n.recipient.medium for n in notices} == {
            Medium.EMAIL,
            Medium.TELEGRAM,
            Medium.SLACK,
        }

        def build(medium):
            (notice,) = [n for n in notices if n.recipient.medium is medium]
            return Outgoing(notice, notice.notification_id, Renderer().render(notice))

        return build

    def test_telegram_gets_the_list_without_buttons(self, digest_out):
        payload = telegram_payload(digest_out(Medium.TELEGRAM))
        assert payload["chat_id"] == "-100888"
        assert "reply_markup" not in payload
        assert "#601 P3 Принтер не печатает" in payload["text"]

    def test_slack_and_mattermost_get_text_only(self, digest_out):
        signer = ButtonSigner(b"unit-test-signing-key-0123456789")
        buttons = MattermostButtons(url="https://x.example/v1/chat/mattermost", sign=signer.sign)
        for payload in (
            slack_payload(digest_out(Medium.SLACK)),
            slack_payload(digest_out(Medium.SLACK), buttons),
        ):
            assert set(payload) == {"text", "channel"}
            assert payload["channel"] == "@maria"
            assert payload["text"].startswith("Сводка 26.11.2026, ООО «Ромашка»: открытых заявок 1")


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
