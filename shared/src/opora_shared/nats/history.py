"""Reading events back from the stream: one ticket's history, or its last event of a kind."""

import logging
from typing import TypeVar

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from opora_shared import subjects
from opora_shared.events import Event, parse_event

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

MAX_HISTORY = 10_000
"""A bound on one ticket's history, so that no read can loop for ever."""


async def ticket_events(js: JetStreamContext, ticket_id: str, *, tenant: str = "*") -> list[Event]:
    """Every event of one ticket, oldest first, read with direct gets (no consumer created)."""
    events: list[Event] = []
    subject = subjects.ticket_history(ticket_id, tenant=tenant)
    seq = 1
    for _ in range(MAX_HISTORY):
        try:
            raw = await js.get_msg(
                subjects.EVENTS_STREAM, seq=seq, subject=subject, next=True, direct=True
            )
        except NotFoundError:
            break
        if raw.data:
            try:
                events.append(parse_event(raw.data))
            except ValueError:
                log.warning(
                    "unreadable event at %s seq %s skipped", subjects.EVENTS_STREAM, raw.seq
                )
        if raw.seq is None:
            break
        seq = raw.seq + 1
    return events


async def last_event(
    js: JetStreamContext, event_cls: type[E], tenant: str, ticket_id: str
) -> E | None:
    """The newest event of one class for one ticket, or None."""
    subject = subjects.event_pattern(event_cls, tenant=tenant, ticket_id=ticket_id)
    try:
        raw = await js.get_last_msg(subjects.EVENTS_STREAM, subject, direct=True)
    except NotFoundError:
        return None
    if not raw.data:
        return None
    return event_cls.model_validate_json(raw.data)
