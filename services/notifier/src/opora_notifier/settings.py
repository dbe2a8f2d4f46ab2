"""Notifier settings (``OPORA_`` environment variables).

Every channel is off until its setting is given, except mail: without an SMTP relay, mail goes
to ``.eml`` files in the outbox (the embedded default). Validators refuse unsafe combinations:
a relay password over an unencrypted connection to another host, a bot token sent over plain
HTTP, a webhook without its signing secret.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from opora_shared.settings import OporaSettings, is_loopback, require_https

__all__ = ["NotifierSettings", "SmtpSecurity", "is_loopback"]

SmtpSecurity = Literal["starttls", "tls", "none"]


class NotifierSettings(OporaSettings):
    """Settings of the notifier service."""

    metrics_port: int = 9104
    support_address: str = "support@opora.local"
    """From and Reply-To of every mail; replies come back to the intake."""
    support_name: str = "Opora Support"
    mail_domain: str = "opora.local"
    """Right-hand side of the Message-IDs Opora makes."""
    outbox_path: Path | None = None
    """Where .eml files go in the embedded default; <var_dir>/outbox unless set."""

    smtp_relay_host: str | None = Field(
        default=None, description="SMTP relay for outbound mail; unset: .eml files in the outbox"
    )
    smtp_relay_port: int = Field(default=587, ge=1, le=65535)
    smtp_relay_security: SmtpSecurity = Field(
        default="starttls", description="starttls (587), tls (implicit, 465) or none"
    )
    smtp_relay_username: str | None = None
    smtp_relay_password: SecretStr | None = None
    smtp_relay_timeout_s: float = Field(default=30.0, gt=0, description="per SMTP command")
    smtp_relay_validate_certs: bool = True
    smtp_relay_ca_file: Path | None = Field(
        default=None, description="CA bundle for the relay's certificate (a private CA)"
    )

    telegram_bot_token: SecretStr | None = Field(
        default=None, description="Telegram Bot API token; unset: no Telegram messages"
    )
    telegram_api_url: str = "https://api.telegram.org"
    slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack or Mattermost incoming webhook; unset: no chat posts"
    )
    slack_webhook_kind: Literal["slack", "mattermost"] = Field(
        default="slack",
        description="what the webhook is: slack (blocks, presses go to the Slack app's "
        "interactivity URL) or mattermost (attachment buttons posting to "
        "{public_url}/v1/chat/mattermost)",
    )
    webhook_url: str | None = Field(
        default=None, description="generic webhook receiving engineer alerts, signed"
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key of the webhook signature (16+ bytes)"
    )
    http_timeout_s: float = Field(default=10.0, gt=0, description="Telegram, Slack, webhook")

    ticket_url: str = Field(
        default="",
        description="engineers' 'open' link, e.g. a helpdesk's: {public_url}, {tenant}, "
        "{ticket_id}; empty: the ticket's signed status page",
    )

    notify_attempts: int = Field(
        default=5, ge=1, le=20, description="tries of one notification before it fails"
    )
    notify_backoff_s: float = Field(default=1.0, gt=0, description="first retry delay")
    notify_backoff_max_s: float = Field(default=60.0, gt=0, description="longest retry delay")
    notify_max_age_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="older triggers (a replay) send nothing"
    )
    rate_limit_per_hour: int = Field(
        default=30, ge=0, description="team alerts per person and channel an hour; 0: no limit"
    )
    client_rate_limit_per_hour: int = Field(
        default=0, ge=0, description="mails per client address an hour; 0: no limit"
    )
    hold_scan_s: float = Field(
        default=30.0, gt=0, description="how often held notifications are looked at again"
    )
    hold_busy_s: float = Field(
        default=5.0, gt=0, description="wait when another replica is sending the same message"
    )
    digest_scan_s: float = Field(
        default=60.0, gt=0, description="how often due daily digests are looked for"
    )

    @model_validator(mode="after")
    def _safe(self) -> "NotifierSettings":
        if (
            self.smtp_relay_host
            and self.smtp_relay_password is not None
            and self.smtp_relay_security == "none"
            and not is_loopback(self.smtp_relay_host)
        ):
            msg = (
                "OPORA_SMTP_RELAY_PASSWORD would cross the network in clear text: set "
                "OPORA_SMTP_RELAY_SECURITY=starttls or tls"
            )
            raise ValueError(msg)
        if (self.smtp_relay_username is None) != (self.smtp_relay_password is None):
            msg = "set both OPORA_SMTP_RELAY_USERNAME and OPORA_SMTP_RELAY_PASSWORD, or neither"
            raise ValueError(msg)
        if self.telegram_bot_token is not None:
            require_https("OPORA_TELEGRAM_API_URL", self.telegram_api_url)
        if self.slack_webhook_url is not None:
            require_https("OPORA_SLACK_WEBHOOK_URL", self.slack_webhook_url.get_secret_value())
        if self.webhook_url:
            require_https("OPORA_WEBHOOK_URL", self.webhook_url)
            secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if len(secret.encode()) < 16:
                msg = "OPORA_WEBHOOK_URL needs OPORA_WEBHOOK_SECRET of at least 16 bytes"
                raise ValueError(msg)
        if self.notify_backoff_max_s < self.notify_backoff_s:
            msg = "OPORA_NOTIFY_BACKOFF_MAX_S must not be below OPORA_NOTIFY_BACKOFF_S"
            raise ValueError(msg)
        return self

    @property
    def outbox(self) -> Path:
        """The outbox directory in use."""
        return self.outbox_path or self.outbox_dir
