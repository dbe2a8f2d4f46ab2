"""Event contract v1: every event Opora publishes, and how to read one back from the wire."""

import json
from typing import Annotated, Any, TypeVar

from pydantic import Field, TypeAdapter

from opora_shared.events.base import (
    Actor,
    Event,
    derive_id,
    has_upcasters,
    register_upcaster,
    upcast,
)
from opora_shared.events.deadletter import DeadLetter
from opora_shared.events.notification import NotificationFailed, NotificationSent
from opora_shared.events.sla import SlaArmed, SlaBreached, SlaWarning, TicketEscalated
from opora_shared.events.ticket import (
    AttachmentRef,
    Requester,
    TicketAssigned,
    TicketClassified,
    TicketReceived,
    TicketUpdated,
)

AnyEvent = Annotated[
    TicketReceived
    | TicketClassified
    | TicketUpdated
    | TicketAssigned
    | SlaArmed
    | SlaWarning
    | SlaBreached
    | TicketEscalated
    | NotificationSent
    | NotificationFailed,
    Field(discriminator="type"),
]
"""Any event of contract v1, chosen by its ``type``."""

EVENT_TYPES: tuple[type[Event], ...] = (
    TicketReceived,
    TicketClassified,
    TicketUpdated,
    TicketAssigned,
    SlaArmed,
    SlaWarning,
    SlaBreached,
    TicketEscalated,
    NotificationSent,
    NotificationFailed,
)

_ANY = TypeAdapter[Any](AnyEvent)


E = TypeVar("E", bound=Event)


def decode(event_cls: type[E], raw: bytes | str) -> E:
    """An event of a known class from its JSON, as a live handler takes it.

    Upcast first when an upcaster is registered (as ``parse_event`` does for histories), so a
    message stored by the previous version is read after a breaking change; otherwise pydantic
    reads the JSON directly.
    """
    if not has_upcasters():
        return event_cls.model_validate_json(raw)
    payload = json.loads(raw)
    if not isinstance(payload, dict):
        msg = "an event must be a JSON object"
        raise ValueError(msg)
    return event_cls.model_validate(upcast(payload))


def parse_event(raw: bytes | str) -> Event:
    """Decode one event from its JSON, upcasting old versions first."""
    if not has_upcasters():  # nothing to rewrite: pydantic reads the JSON itself, twice as fast
        if raw.lstrip()[:1] not in (b"{", "{"):
            msg = "an event must be a JSON object"
            raise ValueError(msg)
        event: Event = _ANY.validate_json(raw)
        return event
    payload = json.loads(raw)
    if not isinstance(payload, dict):
        msg = "an event must be a JSON object"
        raise ValueError(msg)
    upcasted: Event = _ANY.validate_python(upcast(payload))
    return upcasted


__all__ = [
    "EVENT_TYPES",
    "Actor",
    "AnyEvent",
    "AttachmentRef",
    "DeadLetter",
    "Event",
    "NotificationFailed",
    "NotificationSent",
    "Requester",
    "SlaArmed",
    "SlaBreached",
    "SlaWarning",
    "TicketAssigned",
    "TicketClassified",
    "TicketEscalated",
    "TicketReceived",
    "TicketUpdated",
    "decode",
    "derive_id",
    "parse_event",
    "register_upcaster",
]
