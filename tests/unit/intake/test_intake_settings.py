"""The intake's chat settings refuse what would be unsafe or could never work."""

import pytest
from pydantic import ValidationError

from opora_intake.settings import IntakeSettings

SECRET = "opora-webhook-secret_0123456789"


class TestChatSettings:
    def test_telegram_needs_a_secret_telegram_accepts_and_the_bot_token(self):
        settings = IntakeSettings(telegram_webhook_secret=SECRET, telegram_bot_token="1:abc")
        assert settings.telegram_webhook_secret.get_secret_value() == SECRET
        with pytest.raises(ValidationError, match="OPORA_TELEGRAM_BOT_TOKEN"):
            IntakeSettings(telegram_webhook_secret=SECRET)

    @pytest.mark.parametrize("secret", ["short", "has spaces in it, 16+ chars", "x" * 257])
    def test_a_secret_telegram_would_not_accept_is_refused(self, secret):
        with pytest.raises(ValidationError, match="OPORA_TELEGRAM_WEBHOOK_SECRET"):
            IntakeSettings(telegram_webhook_secret=secret, telegram_bot_token="1:abc")

    def test_the_bot_token_never_goes_over_plain_http_to_another_host(self):
        with pytest.raises(ValidationError, match="OPORA_TELEGRAM_API_URL"):
            IntakeSettings(telegram_bot_token="1:abc", telegram_api_url="http://bot.example")
        local = IntakeSettings(telegram_bot_token="1:abc", telegram_api_url="http://127.0.0.1:9")
        assert local.telegram_api_url == "http://127.0.0.1:9"

    def test_an_empty_slack_secret_is_refused(self):
        with pytest.raises(ValidationError, match="OPORA_SLACK_SIGNING_SECRET"):
            IntakeSettings(slack_signing_secret="")

    def test_chat_is_off_by_default(self):
        settings = IntakeSettings()
        assert settings.telegram_webhook_secret is None
        assert settings.slack_signing_secret is None
