"""Chat button presses, pure: reading each platform's request, checking Slack's signature, and
what a press records (or why it records nothing)."""

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest

from opora_intake.chat_actions import (
    MattermostAction,
    Press,
    TelegramUpdate,
    decide,
    mattermost_press,
    member_of,
    slack_request,
    slack_signature_ok,
    stranger,
    telegram_press,
)
from opora_intake.errors import ChatPayloadError
from opora_shared.chat_buttons import ButtonSigner, ChatButtonError, ChatVerb
from opora_shared.events import Actor, TicketUpdated
from opora_shared.team import load_team
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
from opora_shared.vocabulary import Language, TicketChange

TEAM = load_team(Path(__file__).resolve().parents[3] / "deploy" / "team.yml")
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
SECRET = b"8f742231b10e8888abcd99yyyzzz85a5"
KEY = b"unit-test-signing-key-0123456789"


def update(data="opora:ack:1042", user_id=700000001, username=None, language="ru", query="q1"):
    return TelegramUpdate.model_validate(
        {
            "update_id": 1,
            "callback_query": {
                "id": query,
                "from": {
                    "id": user_id,
                    "is_bot": False,
                    "first_name": "Мария",
                    "username": username,
                    "language_code": language,
                },
                "chat_instance": "-1",
                "data": data,
                "message": {"message_id": 5, "chat": {"id": -100777}},
            },
        }
    )


def slack_body(action_id="opora_ack", value="romashka:1042", user="U07MARIA01", **extra):
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "maria"},
        "team": {"id": "T01"},
        "trigger_id": "trig",
        "response_url": "https://hooks.slack.com/actions/T01/1/abc",
        "actions": [{"action_id": action_id, "value": value, "type": "button", "action_ts": "1.5"}],
        **extra,
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def ticket(tenant="romashka", ticket_id="1042", *changes):
    events = [
        make_ticket_received(tenant=tenant, ticket_id=ticket_id),
        make_ticket_classified(tenant=tenant, ticket_id=ticket_id),
    ]
    for change in changes:
        events.append(
            TicketUpdated(
                event_id=uuid.uuid4(),
                occurred_at=NOW,
                tenant=tenant,
                ticket_id=ticket_id,
                change=change,
                actor=Actor(kind="engineer", id="duty"),
            )
        )
    return events


class TestTelegram:
    def test_a_press_of_our_button_names_verb_ticket_and_presser(self):
        press = telegram_press(update(username="maria_k").callback_query)
        assert press == Press(
            medium="telegram",
            verb=ChatVerb.ACK,
            ticket_id="1042",
            tenant=None,
            user_id="700000001",
            username="maria_k",
            press_id="q1",
            language=Language.RU,
        )

    def test_another_bots_data_is_not_a_press(self):
        assert telegram_press(update(data="vote:yes").callback_query) is None
        assert telegram_press(update(data=None).callback_query) is None

    def test_an_update_without_a_press_reads(self):
        assert TelegramUpdate.model_validate({"update_id": 3, "message": {}}).callback_query is None

    def test_a_retried_update_makes_the_same_event_id(self):
        first = telegram_press(update(query="q7").callback_query)
        again = telegram_press(update(query="q7").callback_query)
        other = telegram_press(update(query="q8").callback_query)
        assert first.event_id == again.event_id != other.event_id


class TestSlackSignature:
    def sign(self, timestamp, body, secret=SECRET):
        mac = hmac.new(secret, f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
        return f"v0={mac}"

    def test_slacks_own_example_verifies(self):
        # the example of Slack's "Verifying requests from Slack" page
        secret = b"8f742231b10e8888abcd99yyyzzz85a5"
        body = (
            b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
            b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
            b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
            b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        )
        signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        assert slack_signature_ok(secret, "1531420618", body, signature, now=1531420618 + 60)

    def test_a_changed_body_or_another_secret_fails(self):
        body = slack_body()
        good = self.sign("1700000000", body)
        assert slack_signature_ok(SECRET, "1700000000", body, good, now=1700000000)
        assert not slack_signature_ok(SECRET, "1700000000", body + b"x", good, now=1700000000)
        assert not slack_signature_ok(b"other" * 8, "1700000000", body, good, now=1700000000)
        assert not slack_signature_ok(SECRET, "1700000001", body, good, now=1700000000)

    @pytest.mark.parametrize("skew", [-301, 301, 3600])
    def test_a_stale_or_future_timestamp_fails(self, skew):
        body = slack_body()
        ts = str(1700000000 - skew)
        assert not slack_signature_ok(SECRET, ts, body, self.sign(ts, body), now=1700000000)

    @pytest.mark.parametrize(("ts", "sig"), [(None, "v0=x"), ("1700000000", None), ("1e9", "v0=")])
    def test_missing_parts_fail(self, ts, sig):
        assert not slack_signature_ok(SECRET, ts, b"", sig, now=1700000000)


class TestSlackPayload:
    def test_a_press_of_our_button(self):
        request = slack_request(slack_body())
        assert request.response_url == "https://hooks.slack.com/actions/T01/1/abc"
        press = request.press
        assert (press.medium, press.verb, press.tenant, press.ticket_id) == (
            "slack",
            ChatVerb.ACK,
            "romashka",
            "1042",
        )
        assert (press.user_id, press.username) == ("U07MARIA01", "maria")
        assert press.press_id == "T01:U07MARIA01:1.5"

    def test_the_open_button_and_other_interactions_are_not_presses(self):
        assert slack_request(slack_body(action_id="opora_open")).press is None
        assert slack_request(slack_body(type="view_submission")).press is None

    @pytest.mark.parametrize(
        "body",
        [b"", b"payload=not-json", b"other=1", urlencode({"payload": "[1]"}).encode()],
    )
    def test_not_slacks_shape_is_an_error(self, body):
        with pytest.raises(ChatPayloadError):
            slack_request(body)

    def test_a_press_without_a_user_is_an_error(self):
        with pytest.raises(ChatPayloadError, match=r"user\.id"):
            slack_request(slack_body(user=""))


class TestMattermost:
    def test_the_signed_context_names_tenant_ticket_and_verb(self):
        token = ButtonSigner(KEY).sign("vector", "77", ChatVerb.RESOLVE)
        action = MattermostAction(
            user_id="8x1m9kq3nfgy7p4jz6r2w5tcae",
            post_id="p1",
            trigger_id="t1",
            context={"token": token},
        )
        press = mattermost_press(action, ButtonSigner(KEY))
        assert (press.medium, press.verb, press.tenant, press.ticket_id, press.press_id) == (
            "mattermost",
            ChatVerb.RESOLVE,
            "vector",
            "77",
            "t1",
        )
        assert member_of(TEAM, press).id == "lead"

    @pytest.mark.parametrize("context", [{}, {"token": "forged"}, {"token": 5}])
    def test_a_forged_context_is_refused(self, context):
        with pytest.raises(ChatButtonError):
            mattermost_press(MattermostAction(user_id="u", context=context), ButtonSigner(KEY))


def press(verb=ChatVerb.ACK, tenant=None, ticket_id="1042", press_id="q1", medium="telegram"):
    return Press(
        medium=medium,
        verb=verb,
        ticket_id=ticket_id,
        tenant=tenant,
        user_id="700000001",
        username=None,
        press_id=press_id,
    )


class TestDecide:
    maria = TEAM.engineer("maria")

    def test_an_ack_records_what_the_mail_command_would_with_the_engineer_as_actor(self):
        verdict = decide(press(), self.maria, ticket(), now=NOW)
        assert verdict.outcome == "acted"
        assert verdict.text == "Заявка #1042 принята в работу (Мария)."
        event = verdict.event
        assert (event.change, event.actor, event.tenant, event.ticket_id) == (
            TicketChange.ACKNOWLEDGED,
            Actor(kind="engineer", id="maria"),
            "romashka",
            "1042",
        )
        assert event.occurred_at == NOW
        assert event.event_id == press().event_id

    def test_a_resolve(self):
        verdict = decide(press(ChatVerb.RESOLVE), self.maria, ticket(), now=NOW)
        assert verdict.event.change is TicketChange.RESOLVED
        assert verdict.text == "Заявка #1042 решена (Мария)."

    def test_a_press_already_recorded_is_answered_as_before_and_records_nothing(self):
        first = decide(press(ChatVerb.RESOLVE), self.maria, ticket(), now=NOW)
        events = [*ticket(), first.event]
        again = decide(press(ChatVerb.RESOLVE), self.maria, events, now=NOW)
        assert (again.outcome, again.text, again.event) == ("duplicate", first.text, None)

    def test_a_resolved_ticket_is_neither_acknowledged_nor_resolved_again(self):
        done = ticket("romashka", "1042", TicketChange.RESOLVED)
        for verb in ChatVerb:
            verdict = decide(press(verb, press_id="q9"), self.maria, done, now=NOW)
            assert (verdict.outcome, verdict.event) == ("refused", None)
            assert "уже решена" in verdict.text

    def test_no_such_ticket(self):
        verdict = decide(press(), self.maria, [], now=NOW)
        assert (verdict.outcome, verdict.event) == ("refused", None)
        assert verdict.text == "Заявки #1042 нет."

    def test_a_ticket_of_another_tenant_than_the_button_says(self):
        verdict = decide(press(tenant="vector", medium="slack"), self.maria, ticket(), now=NOW)
        assert (verdict.outcome, verdict.event) == ("refused", None)
        assert verdict.text == "Заявки #1042 нет (vector)."

    def test_a_stranger_is_told_how_to_be_added(self):
        stranger_press = Press("telegram", ChatVerb.ACK, "1042", None, "555", "x", "q", None)
        assert member_of(TEAM, stranger_press) is None
        verdict = stranger(stranger_press)
        assert (verdict.outcome, verdict.event) == ("refused", None)
        assert verdict.text == (
            "Opora does not know you: ask for your Telegram user id 555 to be added to the "
            "team file (chat.telegram_user_id)."
        )
