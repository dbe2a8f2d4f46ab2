"""Ticket events: received, classified, updated."""

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from opora_shared.events.base import Actor, Event
from opora_shared.vocabulary import (
    Category,
    Channel,
    Kind,
    Language,
    Priority,
    Scope,
    TicketChange,
)


class Requester(BaseModel):
    """The person who asked: address and display name."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    email: str
    name: str | None = None


class AttachmentRef(BaseModel):
    """A file stored in the attachments object store, referenced from a ticket event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    filename: str
    content_type: str
    size: int = Field(ge=0)
    sha256: str
    object_name: str = Field(description="name in the opora_attachments object store")
    inline: bool = False


class TicketReceived(Event):
    """A new ticket entered Opora through one of its channels."""

    type: Literal["ticket.received"] = "ticket.received"
    channel: Channel
    requester: Requester
    subject: str
    body: str
    source_ref: str | None = Field(
        default=None, description="the channel's own id: Message-ID, Idempotency-Key, dedup key"
    )
    message_id: str | None = Field(default=None, description="the client's Message-ID, to thread")
    attachments: tuple[AttachmentRef, ...] = ()
    original: str | None = Field(
        default=None, description="object name of the original message (the raw mail)"
    )
    related_ticket: str | None = Field(
        default=None, description="an older, closed ticket this one follows up"
    )


class TicketClassified(Event):
    """The classifier judged the ticket against its tenant's contract, and says why."""

    type: Literal["ticket.classified"] = "ticket.classified"
    category: Category
    kind: Kind
    scope: Scope
    priority: Priority
    language: Language
    confidence: float = Field(ge=0.0, le=1.0)
    received_at: AwareDatetime = Field(
        description="when the ticket was received: clocks start here"
    )
    reasons: tuple[str, ...] = ()
    contract_revision: str
    classifier_version: str


class TicketUpdated(Event):
    """Something happened to a ticket: acknowledged, replied, resolved, reopened..."""

    type: Literal["ticket.updated"] = "ticket.updated"
    change: TicketChange
    actor: Actor
    text: str | None = None
    priority: Priority | None = Field(default=None, description="the new one, on priority_changed")
    message_id: str | None = Field(default=None, description="the mail that carried it, if any")
    attachments: tuple[AttachmentRef, ...] = ()
    time_spent_minutes: int | None = Field(
        default=None, ge=0, le=100_000, description="work time the actor records with it"
    )


class TicketAssigned(Event):
    """Routing chose who works the ticket (or moved it to someone else), and says why."""

    type: Literal["ticket.assigned"] = "ticket.assigned"
    assignee: str = Field(description="engineer id from the team file, e.g. maria")
    assignee_email: str
    team: str | None = Field(default=None, description="the team that owns the category")
    priority: Priority
    rule: Literal[
        "skill_least_load",
        "on_duty_p1",
        "on_duty_out_of_hours",
        "on_duty_fallback",
        "shift_end",
        "manual",
    ] = Field(description="which routing rule decided")
    previous_assignee: str | None = Field(default=None, description="on a reassignment")
    reasons: tuple[str, ...] = ()
