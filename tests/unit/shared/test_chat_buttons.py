"""What chat buttons carry: Telegram callback data, Slack action ids and values, Mattermost
tokens (signed, bound to one ticket and verb, useless as any other token)."""

import pytest
from itsdangerous import URLSafeTimedSerializer

from opora_shared.approvals import ApprovalClaim, ApprovalSigner
from opora_shared.chat_buttons import (
    ButtonSigner,
    ChatButtonError,
    ChatVerb,
    parse_slack_action,
    parse_telegram_callback,
    slack_action_id,
    slack_value,
    telegram_callback,
)
from opora_shared.status_links import StatusLinks
from opora_shared.vocabulary import TicketChange

KEY = b"k" * 32


class TestTelegramCallbackData:
    @pytest.mark.parametrize("verb", list(ChatVerb))
    def test_round_trips_within_telegrams_64_bytes(self, verb):
        data = telegram_callback(verb, "999999999999")
        assert len(data.encode()) <= 64
        assert parse_telegram_callback(data) == (verb, "999999999999")

    @pytest.mark.parametrize(
        "data",
        [None, "", "opora:ack:", "opora:ack:0042", "opora:close:1", "other:ack:1", "opora:ack:1:x"],
    )
    def test_anything_else_is_not_ours(self, data):
        assert parse_telegram_callback(data) is None


class TestSlackActions:
    def test_round_trips_with_the_tenant(self):
        action = slack_action_id(ChatVerb.RESOLVE)
        assert action == "opora_resolve"
        assert parse_slack_action(action, slack_value("romashka", "1042")) == (
            ChatVerb.RESOLVE,
            "romashka",
            "1042",
        )

    @pytest.mark.parametrize(
        ("action", "value"),
        [
            ("opora_open", "romashka:1"),
            ("opora_ack", "romashka"),
            ("opora_ack", "Romashka:1"),
            ("opora_ack", "romashka:1.2"),
            (None, "romashka:1"),
        ],
    )
    def test_anything_else_is_not_ours(self, action, value):
        assert parse_slack_action(action, value) is None


class TestVerbs:
    def test_a_press_records_what_the_mail_command_would(self):
        assert ChatVerb.ACK.change is TicketChange.ACKNOWLEDGED
        assert ChatVerb.RESOLVE.change is TicketChange.RESOLVED


class TestMattermostTokens:
    def test_a_token_names_its_tenant_ticket_and_verb(self):
        signer = ButtonSigner(KEY)
        claim = signer.verify(signer.sign("romashka", "1042", ChatVerb.ACK))
        assert (claim.tenant, claim.ticket_id, claim.verb) == ("romashka", "1042", ChatVerb.ACK)

    def test_an_altered_token_is_refused(self):
        token = ButtonSigner(KEY).sign("romashka", "1042", ChatVerb.ACK)
        altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        with pytest.raises(ChatButtonError, match="not valid"):
            ButtonSigner(KEY).verify(altered)

    def test_another_keys_token_is_refused(self):
        token = ButtonSigner(b"x" * 32).sign("romashka", "1042", ChatVerb.RESOLVE)
        with pytest.raises(ChatButtonError, match="not issued by this Opora"):
            ButtonSigner(KEY).verify(token)

    def test_approval_and_status_tokens_are_not_button_tokens(self):
        approval = ApprovalSigner(KEY).sign(
            ApprovalClaim("romashka", "1042", "director@romashka.ru", "approve")
        )
        for token in (approval, StatusLinks(KEY).sign("romashka", "1042")):
            with pytest.raises(ChatButtonError):
                ButtonSigner(KEY).verify(token)

    def test_an_expired_token_is_refused(self):
        # a negative validity expires every token at once: no clock to wait on
        token = ButtonSigner(KEY).sign("romashka", "1042", ChatVerb.ACK)
        with pytest.raises(ChatButtonError, match="expired"):
            ButtonSigner(KEY, max_age_s=-1).verify(token)

    def test_a_signed_payload_of_the_wrong_shape_is_refused(self):
        serializer = URLSafeTimedSerializer(KEY, salt="opora.chat-button.v1")
        for payload in (["romashka", "1042"], ["romashka", "1042", "close"], "x"):
            with pytest.raises(ChatButtonError, match="unexpected content"):
                ButtonSigner(KEY).verify(str(serializer.dumps(payload)))

    def test_a_short_key_is_refused(self):
        with pytest.raises(ValueError, match="16 bytes"):
            ButtonSigner(b"short")
