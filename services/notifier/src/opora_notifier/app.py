"""The notifier's composition root: settings in, a runnable FastStream app out."""

import logging
from collections.abc import Callable

import httpx
from faststream import FastStream
from prometheus_client import CollectorRegistry

from opora_notifier import handlers
from opora_notifier.channels import Channel
from opora_notifier.channels.outbox import OutboxChannel
from opora_notifier.channels.slack import MattermostButtons, SlackChannel
from opora_notifier.channels.smtp import SmtpChannel
from opora_notifier.channels.telegram import TelegramChannel
from opora_notifier.channels.webhook import WebhookChannel
from opora_notifier.metrics import NotifierMetrics
from opora_notifier.notices import Medium
from opora_notifier.planning import Links
from opora_notifier.settings import NotifierSettings
from opora_shared.approvals import ApprovalClaim, ApprovalSigner, signing_key
from opora_shared.chat_buttons import ButtonSigner, ChatVerb
from opora_shared.contract_store import ContractStore
from opora_shared.nats.broker import make_broker
from opora_shared.service import Clock, build_app, utc_now
from opora_shared.status_links import StatusLinks


class _Signers:
    """Approval and status-page tokens; the signing key is read (or made) on first use only,
    so building the app (``opora docs``) writes no key file."""

    def __init__(self, settings: NotifierSettings) -> None:
        self._settings = settings
        self._approvals: ApprovalSigner | None = None
        self._status: StatusLinks | None = None
        self._buttons: ButtonSigner | None = None

    def _key(self) -> bytes:
        secret = self._settings.signing_key
        return signing_key(
            secret.get_secret_value() if secret else None, self._settings.signing_key_file
        )

    def approval(self, claim: ApprovalClaim) -> str:
        """A token for one decision on one ticket."""
        if self._approvals is None:
            self._approvals = ApprovalSigner(self._key())
        return self._approvals.sign(claim)

    def status(self, tenant: str, ticket_id: str) -> str:
        """A token for one ticket's status page."""
        if self._status is None:
            self._status = StatusLinks(self._key())
        return self._status.sign(tenant, ticket_id)

    def button(self, tenant: str, ticket_id: str, verb: ChatVerb) -> str:
        """A token for one Mattermost button (one verb on one ticket)."""
        if self._buttons is None:
            self._buttons = ButtonSigner(self._key())
        return self._buttons.sign(tenant, ticket_id, verb)


def build_channels(
    settings: NotifierSettings,
    http: httpx.AsyncClient | None,
    clock: Clock,
    button: Callable[[str, str, ChatVerb], str] | None = None,
) -> dict[Medium, Channel]:
    """The channels the settings configure: mail always (a relay, else the outbox).

    ``button`` signs Mattermost buttons (needed with ``slack_webhook_kind=mattermost``).
    """
    channels: dict[Medium, Channel] = {}
    if settings.smtp_relay_host:
        password = settings.smtp_relay_password
        channels[Medium.EMAIL] = SmtpChannel(
            host=settings.smtp_relay_host,
            port=settings.smtp_relay_port,
            security=settings.smtp_relay_security,
            envelope_from=settings.support_address,
            username=settings.smtp_relay_username,
            password=password.get_secret_value() if password else None,
            timeout_s=settings.smtp_relay_timeout_s,
            validate_certs=settings.smtp_relay_validate_certs,
            ca_file=str(settings.smtp_relay_ca_file) if settings.smtp_relay_ca_file else None,
        )
    else:
        channels[Medium.EMAIL] = OutboxChannel(settings.outbox)
    if http is None:
        return channels
    if settings.telegram_bot_token is not None:
        channels[Medium.TELEGRAM] = TelegramChannel(
            http,
            api_url=settings.telegram_api_url,
            token=settings.telegram_bot_token.get_secret_value(),
        )
    if settings.slack_webhook_url is not None:
        mattermost = None
        if settings.slack_webhook_kind == "mattermost" and button is not None:
            url = f"{settings.public_url.rstrip('/')}/v1/chat/mattermost"
            mattermost = MattermostButtons(url=url, sign=button)
        channels[Medium.SLACK] = SlackChannel(
            http, webhook_url=settings.slack_webhook_url.get_secret_value(), mattermost=mattermost
        )
    if settings.webhook_url and settings.webhook_secret is not None:
        channels[Medium.WEBHOOK] = WebhookChannel(
            http,
            url=settings.webhook_url,
            secret=settings.webhook_secret.get_secret_value().encode(),
            clock=clock,
        )
    return channels


def create_app(
    settings: NotifierSettings,
    *,
    clock: Clock = utc_now,
    registry: CollectorRegistry | None = None,
) -> FastStream:
    """Wire the notifier: broker, contracts and team, channels, metrics and handlers."""
    registry = registry if registry is not None else CollectorRegistry()
    broker = make_broker(settings, service="notifier", registry=registry)
    contracts = ContractStore(
        settings.contracts_dir, settings.team_file, seed=settings.contracts_seed
    )
    needs_http = bool(
        settings.telegram_bot_token or settings.slack_webhook_url or settings.webhook_url
    )
    http = httpx.AsyncClient(timeout=settings.http_timeout_s) if needs_http else None
    # httpx logs every request URL at INFO, and a Telegram URL holds the bot token
    logging.getLogger("httpx").setLevel(logging.WARNING)
    signers = _Signers(settings)
    notifier = handlers.register(
        broker,
        settings,
        contracts=contracts,
        channels=build_channels(settings, http, clock, signers.button),
        links=Links(
            public_url=settings.public_url,
            ticket_url=settings.ticket_url,
            mail_domain=settings.mail_domain,
            sign=signers.approval,
            status_token=signers.status,
        ),
        metrics=NotifierMetrics(registry),
        clock=clock,
    )
    app = build_app(
        broker,
        title="opora-notifier",
        description="Tells engineers and clients what they need to know, once, on their "
        "channel: acknowledgements, approval requests, status notices, pages and SLA alerts.",
        on_start=lambda: settings.outbox.mkdir(parents=True, exist_ok=True),
        contracts=contracts,
        registry=registry,
        background=[notifier.run_holds, notifier.run_digests],
        tap_history=True,  # every trigger's ticket history is read
    )
    if http is not None:
        app.on_shutdown(http.aclose)
    return app
