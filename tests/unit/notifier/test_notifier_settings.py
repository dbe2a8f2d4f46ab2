import httpx
import pytest
from pydantic import ValidationError

from opora_notifier.app import build_channels
from opora_notifier.notices import Medium
from opora_notifier.settings import NotifierSettings, is_loopback
from opora_shared.chat_buttons import ButtonSigner, ChatVerb


def settings(**values):
    return NotifierSettings(_env_file=None, **values)


class TestSafeSettings:
    def test_the_default_writes_to_the_outbox_and_has_no_chat(self, tmp_path):
        s = settings(var_dir=tmp_path)
        assert s.smtp_relay_host is None
        assert s.outbox == tmp_path / "outbox"
        assert s.telegram_bot_token is None

    def test_a_relay_password_never_crosses_the_network_in_clear(self):
        with pytest.raises(ValidationError, match="OPORA_SMTP_RELAY_SECURITY"):
            settings(
                smtp_relay_host="mail.example.com",
                smtp_relay_security="none",
                smtp_relay_username="opora",
                smtp_relay_password="secret",
            )
        assert (
            settings(
                smtp_relay_host="127.0.0.1",
                smtp_relay_security="none",
                smtp_relay_username="opora",
                smtp_relay_password="secret",
            ).smtp_relay_password
            is not None
        )

    def test_username_and_password_come_together(self):
        with pytest.raises(ValidationError, match="both"):
            settings(smtp_relay_host="mail.example.com", smtp_relay_username="opora")

    def test_a_bot_token_is_sent_over_https_only(self):
        with pytest.raises(ValidationError, match="OPORA_TELEGRAM_API_URL"):
            settings(telegram_bot_token="1:x", telegram_api_url="http://api.example.com")
        assert settings(telegram_bot_token="1:x", telegram_api_url="http://127.0.0.1:9")

    def test_a_webhook_needs_a_long_secret(self):
        with pytest.raises(ValidationError, match="OPORA_WEBHOOK_SECRET"):
            settings(webhook_url="https://psa.example.com/hook")
        with pytest.raises(ValidationError, match="OPORA_WEBHOOK_SECRET"):
            settings(webhook_url="https://psa.example.com/hook", webhook_secret="short")
        assert settings(webhook_url="https://psa.example.com/hook", webhook_secret="x" * 16)

    def test_secrets_do_not_show_in_the_settings_repr(self):
        s = settings(
            telegram_bot_token="123:very-secret",
            slack_webhook_url="https://hooks.slack.com/services/T/B/secret",
        )
        assert "very-secret" not in repr(s)
        assert "services/T/B/secret" not in repr(s)

    def test_loopback_hosts(self):
        assert is_loopback("127.0.0.1")
        assert is_loopback("localhost")
        assert is_loopback("::1")
        assert not is_loopback("mail.example.com")
        assert not is_loopback(None)


class TestChatChannels:
    async def test_mattermost_buttons_post_to_the_intakes_public_address(self, tmp_path):
        signer = ButtonSigner(b"unit-test-signing-key-0123456789")
        base = {
            "var_dir": tmp_path,
            "slack_webhook_url": "https://chat.example.com/hooks/abc",
            "public_url": "https://support.example.com/",
        }
        async with httpx.AsyncClient() as http:
            slack = build_channels(settings(**base), http, clock=None, button=signer.sign)
            mattermost = build_channels(
                settings(**base, slack_webhook_kind="mattermost"), http, None, signer.sign
            )
        assert slack[Medium.SLACK]._mattermost is None
        buttons = mattermost[Medium.SLACK]._mattermost
        assert buttons.url == "https://support.example.com/v1/chat/mattermost"
        claim = signer.verify(buttons.sign("romashka", "1042", ChatVerb.RESOLVE))
        assert (claim.tenant, claim.ticket_id, claim.verb) == ("romashka", "1042", ChatVerb.RESOLVE)

    def test_the_webhook_kind_is_slack_or_mattermost(self):
        assert settings().slack_webhook_kind == "slack"
        with pytest.raises(ValidationError, match="slack_webhook_kind"):
            settings(slack_webhook_kind="teams")
