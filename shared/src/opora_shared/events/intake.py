"""Intake records: what happened to each inbound mail, including the ones that made no ticket.

Not ticket events (a bounce or an auto-reply may belong to no ticket), so they live on their
own subjects (``opora.intake.mail.<outcome>``), kept for the operator to see why.
"""

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict


class MailOutcome(StrEnum):
    """What the intake did with one inbound mail."""

    TICKET = "ticket"
    """A new ticket."""
    THREADED = "threaded"
    """A reply recorded on its ticket (client_replied)."""
    REOPENED = "reopened"
    """A reply that reopened a resolved ticket."""
    AUTOMATIC_RECORDED = "automatic_recorded"
    """An auto-reply or bulk mail recorded on the ticket it answers, never acknowledged."""
    AUTOMATIC = "automatic"
    """An auto-reply or bulk mail that answers no ticket: no ticket made."""
    BOUNCE = "bounce"
    """A bounce of our own notification: recorded as NotificationFailed."""
    LOOP = "loop"
    """Our own mail coming back, or an automatic sender over its daily cap."""
    DUPLICATE = "duplicate"
    """The same Message-ID again."""
    ENGINEER = "engineer"
    """A team member's reply or command (#ack, #resolve...) recorded on its ticket."""
    REJECTED = "rejected"
    """A team member's mail that could not act (no ticket, unknown command, failed sender
    authentication...): nothing done, the reason says why."""
    OVERSIZE = "oversize"
    UNKNOWN_RECIPIENT = "unknown_recipient"


class MailRecorded(BaseModel):
    """One inbound mail and its outcome (the operator's 'why no ticket?')."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    record_id: str
    occurred_at: AwareDatetime
    channel: str
    outcome: MailOutcome
    reason: str
    message_id: str | None = None
    sender: str | None = None
    tenant: str | None = None
    ticket_id: str | None = None
    size: int = 0
