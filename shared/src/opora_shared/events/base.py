"""The envelope every Opora event shares, deterministic ids and upcasting of old payloads.

Events are frozen pydantic models, JSON on the wire. Consumers read tolerantly
(``extra="ignore"``) so that additive changes never break an older reader. A breaking change
bumps ``schema_version`` and registers an upcaster that rewrites old payloads before validation,
so old stream messages still replay.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from opora_shared.types import TenantId, TicketId

OPORA_NAMESPACE = uuid.UUID("6f0f5d1e-2c55-4e43-9a53-0b8f4a1c7e21")
"""Namespace of Opora's uuid5 ids: the same inputs always give the same event id."""


def derive_id(*parts: str) -> uuid.UUID:
    """A deterministic id from its parts, so that a retried effect publishes the same event."""
    return uuid.uuid5(OPORA_NAMESPACE, "\x1f".join(parts))


class Event(BaseModel):
    """Envelope of every event: id, type, version, time, tenant and ticket."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: str
    event_id: uuid.UUID
    schema_version: int = 1
    occurred_at: AwareDatetime
    tenant: TenantId
    ticket_id: TicketId

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def event_type(cls) -> str:
        """``<family>.<name>`` of this event class, e.g. ``ticket.received``."""
        default = cls.model_fields["type"].default
        if not isinstance(default, str) or default.count(".") != 1:
            msg = f"{cls.__name__} needs a Literal 'type' default of the form '<family>.<name>'"
            raise TypeError(msg)
        return default

    @property
    def family(self) -> str:
        """The event family (``ticket``, ``sla``, ``notification``)."""
        return self.type.split(".", 1)[0]

    @property
    def name(self) -> str:
        """The event's name within its family (``received``, ``breached``...)."""
        return self.type.split(".", 1)[1]


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function that rewrites a payload of ``from_version`` to the next version."""

    def decorator(func: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_version)] = func
        return func

    return decorator


def has_upcasters() -> bool:
    """Whether any upcaster is registered (none: every stored event is read as it is)."""
    return bool(_UPCASTERS)


def upcast(payload: dict[str, Any]) -> dict[str, Any]:
    """Apply registered upcasters until the payload reaches the newest version of its type."""
    event_type = str(payload.get("type", ""))
    version = int(payload.get("schema_version", 1))
    while (step := _UPCASTERS.get((event_type, version))) is not None:
        payload = step(dict(payload))
        version += 1
        payload["schema_version"] = version
    return payload


class Actor(BaseModel):
    """Who caused an event: a person, a service or an integration (never a secret)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: str = Field(description="person, engineer, service, integration or client")
    id: str = Field(description="an address, a service name or a token id")
