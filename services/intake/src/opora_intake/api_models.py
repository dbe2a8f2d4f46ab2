"""HTTP models of the intake: strict input (a 422 names the field), plain output."""

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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
