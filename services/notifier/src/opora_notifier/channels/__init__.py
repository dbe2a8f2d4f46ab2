"""Delivery channels: how one rendered notice leaves Opora, and how a failure is told apart.

A channel sends one ``Outgoing`` and either returns (delivered) or raises ``DeliveryError``
saying whether a retry may help (``temporary``) and whether the message certainly did not
arrive (``undelivered``: the receiver refused it, or it never got a connection). Just before
the step after which the message may have arrived (SMTP DATA, the HTTP request), a channel
calls ``commit()``: the dispatcher records it, so that after a crash it knows whether the
message may be out. ``confirm`` answers, after a crash, whether a message is there (the
outbox can tell; a relay or an API cannot: None).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from opora_notifier.notices import Medium, Notice
from opora_notifier.rendering import Rendered
from opora_shared.errors import OporaError

Commit = Callable[[], Awaitable[None]]
"""Called by a channel right before the message may reach the receiver."""


class DeliveryError(OporaError):
    """A channel did not deliver; whether to retry, and whether it surely did not arrive."""

    def __init__(
        self,
        reason: str,
        *,
        temporary: bool,
        undelivered: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary
        self.undelivered = undelivered
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One notice ready to leave: rendered, with its ids and, for mail, the message."""

    notice: Notice
    notification_id: str
    rendered: Rendered
    message_id: str | None = None
    """Our Message-ID (mail only)."""
    mail: EmailMessage | None = None


class Channel(Protocol):
    """What the dispatcher needs of a channel."""

    name: str
    """Recorded in events and metrics: outbox, smtp, telegram, slack, webhook."""
    medium: Medium
    deadline_s: float
    """The longest one attempt may take; the dispatcher cuts it off there."""
    cte: str
    """Content-Transfer-Encoding for mail bodies (mail channels)."""

    async def send(self, out: Outgoing, commit: Commit) -> str | None:
        """Deliver; return the receiver's id of the message, if it gives one."""

    async def confirm(self, out: Outgoing) -> bool | None:
        """After a crash: True when the message is known delivered, False when not, else None."""

    async def close(self) -> None:
        """Release connections."""
