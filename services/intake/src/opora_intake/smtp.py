"""The inbound SMTP server (aiosmtpd) on the intake's own event loop.

Accepts mail for the support addresses only (550 otherwise), refuses too many recipients
(452), too large a message (552, aiosmtpd's data size limit) and too many connections (421).
A mail is answered 250 only after its ticket event is stored in JetStream; when NATS cannot
store it the answer is 451, so the sending MTA keeps it and retries: nothing is lost.
"""

import asyncio
import contextlib
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from nats.errors import Error as NatsError

from opora_intake.mail_intake import MailIntake
from opora_intake.metrics import IntakeMetrics
from opora_intake.settings import IntakeSettings
from opora_shared.errors import NotReadyError
from opora_shared.events.intake import MailOutcome

log = logging.getLogger(__name__)

TRY_LATER = "451 4.3.0 Temporarily unable to store the message; try again later"


class SupportMailHandler:
    """aiosmtpd handler: RCPT checks and DATA into the mail intake."""

    def __init__(
        self, intake: MailIntake, settings: IntakeSettings, metrics: IntakeMetrics
    ) -> None:
        self.intake = intake
        self.settings = settings
        self.metrics = metrics
        self.support = {a.lower() for a in settings.support_addresses}

    async def handle_RCPT(
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept the support addresses only, up to the recipient limit."""
        if address.lower() not in self.support:
            with contextlib.suppress(NatsError, TimeoutError, NotReadyError):
                await self.intake.record_refusal(
                    MailOutcome.UNKNOWN_RECIPIENT,
                    f"recipient {address.lower()} is not a support address",
                    sender=envelope.mail_from,
                )
            return "550 5.1.1 No such mailbox here"
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        """Turn the message into a ticket (or a reply, a record...) before answering 250."""
        raw = envelope.original_content or b""
        try:
            result = await self.intake.receive(
                raw, channel="smtp", envelope_from=envelope.mail_from
            )
        except (NatsError, TimeoutError, NotReadyError, ConnectionError) as exc:
            log.warning("mail not stored (%s): answered 451", type(exc).__name__)
            return TRY_LATER
        return result.smtp_reply()

    async def record_oversize(self, envelope: Envelope | None) -> None:
        """Record a message refused for its size (552)."""
        with contextlib.suppress(NatsError, TimeoutError, NotReadyError):
            await self.intake.record_refusal(
                MailOutcome.OVERSIZE,
                f"over {self.settings.max_message_bytes} bytes",
                sender=envelope.mail_from if envelope else None,
            )

    async def handle_exception(self, error: Exception) -> str:
        """Anything unexpected: 451, so the sender retries rather than loses the mail."""
        log.error("SMTP session error: %s", type(error).__name__, exc_info=error)
        return TRY_LATER


class _LimitedSMTP(SMTP):
    """aiosmtpd's SMTP with a cap on concurrent connections (421 above it)."""

    active = 0
    limit = 100

    def connection_made(self, transport: Any) -> None:
        if type(self).active >= type(self).limit:
            self._refused = True
            transport.write(b"421 4.7.0 Too many connections, try again later\r\n")
            transport.close()
            return
        self._refused = False
        type(self).active += 1
        super().connection_made(transport)

    async def push(self, status: Any) -> None:
        text = status.decode() if isinstance(status, bytes) else str(status)
        if text.startswith("552") and isinstance(self.event_handler, SupportMailHandler):
            # aiosmtpd refuses an oversize message itself; record it before answering.
            await self.event_handler.record_oversize(self.envelope)
        await super().push(status)

    def connection_lost(self, error: Exception | None) -> None:
        if getattr(self, "_refused", False):
            return
        type(self).active -= 1
        super().connection_lost(error)


async def start_smtp_server(
    intake: MailIntake, settings: IntakeSettings, metrics: IntakeMetrics
) -> asyncio.Server:
    """Listen on OPORA_SMTP_HOST:OPORA_SMTP_PORT in the running loop."""
    handler = SupportMailHandler(intake, settings, metrics)
    smtp_class = type(
        "OporaSMTP", (_LimitedSMTP,), {"active": 0, "limit": settings.max_smtp_connections}
    )

    def factory() -> SMTP:
        return smtp_class(  # type: ignore[no-any-return]
            handler,
            data_size_limit=settings.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=settings.mail_domain,
            ident="Opora intake",
            timeout=settings.smtp_timeout_s,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=settings.smtp_host, port=settings.smtp_port)
    log.info("SMTP on %s:%d", settings.smtp_host, settings.smtp_port)
    return server
