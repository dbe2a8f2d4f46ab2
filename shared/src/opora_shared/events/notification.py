"""Notification events: what the notifier sent, or failed to send."""

from typing import Literal

from pydantic import Field

from opora_shared.events.base import Event


class NotificationSent(Event):
    """A notification left Opora (an .eml in the outbox, a mail relayed, a chat message)."""

    type: Literal["notification.sent"] = "notification.sent"
    notification_id: str = Field(description="stable per (ticket, trigger, recipient)")
    trigger: str = Field(description="what caused it, e.g. acknowledgement")
    channel: str
    recipient: str
    message_id: str | None = Field(default=None, description="the mail's Message-ID, to thread")


class NotificationFailed(Event):
    """A notification could not be delivered after its retries."""

    type: Literal["notification.failed"] = "notification.failed"
    notification_id: str
    trigger: str
    channel: str
    recipient: str
    reason: str
    attempts: int = Field(ge=1)
