"""HTTP models of the intake: strict input (a 422 names the field), plain output."""

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from opora_shared.ticket_index import TicketSummary
from opora_shared.tokens import TokenRecord, TokenScope
from opora_shared.types import TenantId
from opora_shared.vocabulary import Priority

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")


def _email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value):
        msg = "not an email address (expected name@example.com)"
        raise ValueError(msg)
    return value.lower()


Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]


class TicketCreate(BaseModel):
    """A ticket submitted over HTTP (the web-request channel)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    from_: Email = Field(alias="from", description="the requester's email address")
    name: str | None = Field(default=None, max_length=200)
    subject: str = Field(min_length=1, max_length=998)
    body: str = Field(min_length=1, max_length=100_000)


class TicketAccepted(BaseModel):
    """The answer to a submitted ticket: its number."""

    id: str
    duplicate: bool = Field(default=False, description="true when the Idempotency-Key was seen")


class Problem(BaseModel):
    """An error answer."""

    detail: str


class ApprovalRead(BaseModel):
    """What an approval link is about, and where its ticket's decision stands."""

    ticket_id: str
    subject: str
    link_decision: Literal["approve", "decline"] = Field(description="what this link does")
    state: Literal["pending", "recorded", "decided"] = Field(
        description="pending: no decision yet (GET); recorded: this request recorded it (POST); "
        "decided: the ticket already had a decision (nothing changed)"
    )
    decision: Literal["approved", "declined"] | None = Field(
        default=None, description="the ticket's decision, once there is one"
    )
    decided_at: datetime | None = None


# -- tokens -----------------------------------------------------------------------------------

TenantOrAll = Annotated[
    str,
    Field(
        pattern=r"^(\*|[a-z][a-z0-9_-]{0,31})$",
        description="a tenant id, or * for every tenant",
        examples=["romashka"],
    ),
]


class TokenCreate(BaseModel):
    """A token to make: its name, tenants and scopes."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, description="who or what uses it")
    tenant: TenantOrAll | None = Field(
        default=None, description="one tenant, or * for every tenant (engineers)"
    )
    tenants: list[TenantId] | None = Field(
        default=None, min_length=1, max_length=100, description="several tenants, instead"
    )
    scopes: list[TokenScope] = Field(min_length=1, max_length=4)


class TokenRead(BaseModel):
    """A token as listed: never the token itself."""

    id: str = Field(description="not a secret: names the token in lists, logs and events")
    name: str
    tenant: str | None
    tenants: list[str]
    scopes: list[str]
    created_at: datetime | None
    created_by: str | None
    revoked: bool
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @classmethod
    def of(cls, record: TokenRecord) -> "TokenRead":
        """The listing of a stored token."""
        return cls(
            id=record.id,
            name=record.name,
            tenant=record.tenant,
            tenants=list(record.tenants),
            scopes=list(record.scopes),
            created_at=record.created_at,
            created_by=record.created_by,
            revoked=record.revoked,
            revoked_at=record.revoked_at,
            revoked_by=record.revoked_by,
        )


class TokenCreated(TokenRead):
    """A new token: shown this once, never again."""

    token: str = Field(description="the secret: send it as Authorization: Bearer <token>")


# -- tickets ----------------------------------------------------------------------------------


class TicketPage(BaseModel):
    """One page of tickets, newest first."""

    items: list[TicketSummary]
    next_cursor: str | None = Field(
        default=None, description="pass as ?cursor= for the next page; null on the last page"
    )


class TicketAction(StrEnum):
    """What a ticket event does (``POST /v1/tickets/{id}/events``)."""

    ACKNOWLEDGE = "acknowledge"
    """Someone works on it: stops the first-response clock."""
    REPLY = "reply"
    """An answer for the client (``text``), mailed by the notifier."""
    WAIT_ON_CLIENT = "wait_on_client"
    """Waiting on the client (``text``: the question); pauses the resolution clock."""
    RESOLVE = "resolve"
    """Done (``text``: the resolution note)."""
    REOPEN = "reopen"
    """A resolved ticket is open again."""
    CHANGE_PRIORITY = "change_priority"
    """A new ``priority``; the SLA clocks follow."""
    REASSIGN = "reassign"
    """Hand the ticket to another engineer (``assignee``: an id or address of the team file)."""
    APPROVE = "approve"
    """The client's approver consented to billable work (one decision per ticket)."""
    DECLINE = "decline"
    """The client's approver declined it (one decision per ticket)."""


class TicketEventCreate(BaseModel):
    """Something done to a ticket through the API."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: TicketAction
    text: str | None = Field(
        default=None, min_length=1, max_length=100_000, description="required for reply"
    )
    priority: Priority | None = Field(default=None, description="required for change_priority")
    assignee: str | None = Field(
        default=None, min_length=1, max_length=254, description="required for reassign"
    )
    time_spent_minutes: int | None = Field(
        default=None, ge=0, le=100_000, description="work time recorded with it"
    )


class TicketEventAccepted(BaseModel):
    """The event a ticket action became."""

    ticket_id: str
    event_id: str
    event_type: Literal["ticket.updated", "ticket.assigned"]
    change: str | None = Field(default=None, description="the ticket.updated change")
    duplicate: bool = Field(
        default=False, description="true when this Idempotency-Key was already recorded"
    )


class ChatActionAnswer(BaseModel):
    """What became of a chat button press (Telegram and Slack ignore the body)."""

    outcome: Literal["acted", "duplicate", "refused", "ignored"] = Field(
        description="acted: recorded; duplicate: this press was recorded before (a retry); "
        "refused: nothing recorded, the text says why; ignored: not one of Opora's buttons"
    )
    text: str = Field(description="what the person who pressed is told")
    event_id: str | None = Field(default=None, description="the ticket.updated recorded")


class MattermostAnswer(BaseModel):
    """The answer Mattermost shows the person who pressed (only to them)."""

    ephemeral_text: str
    outcome: Literal["acted", "duplicate", "refused", "ignored"]
