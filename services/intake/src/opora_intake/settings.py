"""Intake settings (``OPORA_`` environment variables)."""

import re
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from opora_shared.settings import OporaSettings, require_https

_TELEGRAM_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


class IntakeSettings(OporaSettings):
    """Settings of the intake service."""

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    metrics_port: int = 9101
    max_json_bytes: int = Field(default=1024 * 1024, ge=1024, description="413 above this")
    id_block_size: int = Field(
        default=50, ge=1, le=10_000, description="ticket numbers reserved per KV round trip"
    )

    # Inbound mail (SMTP server and IMAP mailboxes)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=0, le=65535, description="0 disables the SMTP server")
    support_addresses: tuple[str, ...] = Field(
        default=("support@opora.local",), description="recipients the SMTP server accepts"
    )
    mail_domain: str = Field(default="opora.local", description="domain of our own Message-IDs")
    max_message_bytes: int = Field(default=25 * 1024 * 1024, ge=1024, description="552 above")
    max_recipients: int = Field(default=50, ge=1)
    max_smtp_connections: int = Field(default=100, ge=1, description="421 above")
    smtp_timeout_s: float = Field(default=120.0, gt=0)
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=0, description="per file")
    max_attachments_bytes: int = Field(default=25 * 1024 * 1024, ge=0, description="per message")
    auto_mail_cap_per_sender: int = Field(default=20, ge=1, description="automatic mails a day")
    auto_mail_cap_per_ticket: int = Field(default=5, ge=1, description="automatic mails a day")
    reopen_window_days: int = Field(default=14, ge=0, description="a reply reopens, or opens anew")
    imap_mailboxes_file: Path | None = Field(default=None, description="YAML list of mailboxes")
    mail_authserv_id: str | None = Field(
        default=None,
        description="the relay's Authentication-Results id; set, team mail must pass SPF/DKIM",
    )

    # The web form at / and the status pages at /status/{token} (docs/web-form.md); attachments
    # share max_attachment_bytes (per file) and max_attachments_bytes (per ticket) with mail.
    web_max_body_bytes: int = Field(
        default=26 * 1024 * 1024, ge=64 * 1024, description="a web form post over this is 413"
    )
    web_max_files: int = Field(default=10, ge=0, le=100, description="attachments per web form")
    web_form_max_age_s: int = Field(
        default=2 * 3600, ge=60, description="a web form older than this asks to send again"
    )
    status_link_max_age_days: int = Field(
        default=365, ge=1, description="how long a ticket's status link works"
    )

    # The integrator API (docs/api.md): rate limits are token buckets kept in each replica's
    # memory, so N replicas behind a balancer allow up to N times these rates. 0 turns one off.
    rate_limit_ip_per_s: float = Field(
        default=20.0, ge=0, description="requests a second per client IP (refill rate); 0: off"
    )
    rate_limit_ip_burst: int = Field(default=400, ge=1, description="requests at once per IP")
    rate_limit_token_per_s: float = Field(
        default=10.0, ge=0, description="requests a second per bearer token (refill rate); 0: off"
    )
    rate_limit_token_burst: int = Field(default=200, ge=1, description="requests at once per token")

    # Chat buttons (docs/engineer-actions.md): Telegram's bot webhook, Slack's interactivity
    # requests and Mattermost's button integrations act on tickets as the person who pressed.
    telegram_bot_token: SecretStr | None = Field(
        default=None, description="the bot's token, to answer button presses (answerCallbackQuery)"
    )
    telegram_api_url: str = Field(
        default="https://api.telegram.org", description="the Bot API; https only (http to loopback)"
    )
    telegram_webhook_secret: SecretStr | None = Field(
        default=None,
        description="setWebhook's secret_token: 16-256 of A-Z a-z 0-9 _ -; unset: "
        "/v1/chat/telegram answers 403",
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="the Slack app's signing secret; unset: /v1/chat/slack answers 403",
    )
    chat_http_timeout_s: float = Field(
        default=5.0, gt=0, description="answers to presses: Telegram's API, Slack's response_url"
    )

    @model_validator(mode="after")
    def _safe(self) -> "IntakeSettings":
        if self.telegram_webhook_secret is not None:
            if not _TELEGRAM_SECRET.match(self.telegram_webhook_secret.get_secret_value()):
                msg = (
                    "OPORA_TELEGRAM_WEBHOOK_SECRET must be 16 to 256 characters of A-Z, a-z, "
                    "0-9, _ and - (what Telegram's setWebhook accepts)"
                )
                raise ValueError(msg)
            if self.telegram_bot_token is None:
                msg = (
                    "OPORA_TELEGRAM_WEBHOOK_SECRET needs OPORA_TELEGRAM_BOT_TOKEN to answer presses"
                )
                raise ValueError(msg)
        if self.telegram_bot_token is not None:
            require_https("OPORA_TELEGRAM_API_URL", self.telegram_api_url)
        if (
            self.slack_signing_secret is not None
            and not self.slack_signing_secret.get_secret_value()
        ):
            msg = "OPORA_SLACK_SIGNING_SECRET is empty"
            raise ValueError(msg)
        return self
