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
