"""Constrained types shared by events, contracts and HTTP models."""

from typing import Annotated

from pydantic import AfterValidator, Field

TenantId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
"""A tenant's id: lowercase, safe as a NATS subject token (e.g. ``romashka``)."""

TicketId = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,11}$")]
"""A ticket's id: a positive number as text, the ``#1042`` clients see."""

UNKNOWN_TENANT = "unknown"
"""Tenant of a ticket whose sender matches no contract; it is never dropped."""


def _lower(value: str) -> str:
    return value.strip().lower()


Address = Annotated[str, Field(min_length=3, max_length=254), AfterValidator(_lower)]
"""An email address as written in contracts, compared case-insensitively."""
