"""Mail through an SMTP relay (aiosmtplib): STARTTLS or implicit TLS, optional AUTH.

One connection per message, the protocol steps one by one, so that the dispatcher hears
``commit()`` right before DATA: until then nothing can have reached the relay, and a failure
is safe to retry. After DATA is sent, a reply code from the relay is still a clear answer
(4xx: try again later, 5xx: refused); a timeout or a dropped connection is not, and the relay
may have taken the mail (docs/notifications.md, "the SMTP window").
"""

import asyncio
import contextlib

import aiosmtplib

from opora_notifier.channels import Commit, DeliveryError, Outgoing
from opora_notifier.notices import Medium
from opora_notifier.rendering import WIRE
from opora_notifier.settings import SmtpSecurity

_TRANSIENT = (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError)


class SmtpChannel:
    """Sends mail through a relay."""

    name = "smtp"
    medium = Medium.EMAIL
    cte = "quoted-printable"  # 7-bit safe: no relay needs 8BITMIME

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: SmtpSecurity,
        envelope_from: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
        validate_certs: bool = True,
        ca_file: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.envelope_from = envelope_from
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        self.validate_certs = validate_certs
        self.ca_file = ca_file
        # connect, EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA: bounded all together
        self.deadline_s = timeout_s * 3

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.security == "tls",
            start_tls=True if self.security == "starttls" else False,  # noqa: SIM210
            timeout=self.timeout_s,
            validate_certs=self.validate_certs,
            cert_bundle=self.ca_file,
        )

    async def send(self, out: Outgoing, commit: Commit) -> str | None:
        """MAIL, RCPT, commit, DATA; the relay's reply code decides what a failure means."""
        if out.mail is None:
            msg = "the SMTP channel sends mail only"
            raise DeliveryError(msg, temporary=False, undelivered=True)
        client = self._client()
        try:
            try:
                await client.connect()
                if self.username is not None and self.password is not None:
                    await client.login(self.username, self.password)
                await client.mail(self.envelope_from)
                await client.rcpt(out.notice.recipient.address)
            except aiosmtplib.SMTPResponseException as exc:
                raise _refused(exc) from exc
            except _TRANSIENT as exc:
                raise DeliveryError(
                    f"SMTP relay unreachable: {type(exc).__name__}",
                    temporary=True,
                    undelivered=True,
                ) from exc
            await commit()
            try:
                await client.data(out.mail.as_bytes(policy=WIRE))
            except aiosmtplib.SMTPResponseException as exc:
                raise _refused(exc) from exc
            except _TRANSIENT as exc:
                raise DeliveryError(
                    f"no answer to DATA: {type(exc).__name__}", temporary=True
                ) from exc
        finally:
            with contextlib.suppress(Exception):
                if client.is_connected:
                    await client.quit()
            client.close()
        return out.message_id

    async def confirm(self, out: Outgoing) -> bool | None:  # noqa: ARG002
        """A relay cannot be asked whether it took a message."""
        return None

    async def close(self) -> None:
        """One connection per message: nothing to release."""


def _refused(exc: aiosmtplib.SMTPResponseException) -> DeliveryError:
    """The relay answered with a code: 4xx is worth another try, 5xx is final."""
    text = " ".join(str(exc.message).split())[:200]
    return DeliveryError(
        f"SMTP {exc.code} {text}".strip(), temporary=400 <= exc.code < 500, undelivered=True
    )
