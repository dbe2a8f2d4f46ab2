"""Reading events back from the stream: one ticket's history, or its last event of a kind."""

import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from opora_shared import subjects
from opora_shared.events import Event, parse_event

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

MAX_HISTORY = 10_000
"""A bound on one ticket's history, so that no read can loop for ever."""

CACHED_TICKETS = 4096
"""Histories remembered per connection (least recently used go first)."""


@dataclass(frozen=True, slots=True)
class _Known:
    events: tuple[Event, ...]
    next_seq: int


_known: "weakref.WeakKeyDictionary[Any, OrderedDict[tuple[str, str], _Known]]" = (
    weakref.WeakKeyDictionary()
)
"""Per connection: the history already read of recent tickets, and where it ended.

The events stream only grows (deletes are denied, no max age) and a stream sequence is given
when a message is stored, so every event of a ticket below ``next_seq`` was read already; a
later read only asks for what came after. A ticket's history is read on nearly every event
(the index, routing, the notifier), and reading it from the start made each of those reads
cost as many direct gets as the ticket had events, plus one.
"""


def _cache(js: JetStreamContext) -> "OrderedDict[tuple[str, str], _Known]":
    connection = getattr(js, "_nc", js)
    try:
        return _known.setdefault(connection, OrderedDict())
    except TypeError:  # not weak-referenceable: no cache
        return OrderedDict()


async def ticket_events(js: JetStreamContext, ticket_id: str, *, tenant: str = "*") -> list[Event]:
    """Every event of one ticket, oldest first, read with direct gets (no consumer created)."""
    subject = subjects.ticket_history(ticket_id, tenant=tenant)
    cache, key = _cache(js), (tenant, ticket_id)
    known = cache.get(key)
    events: list[Event] = list(known.events) if known else []
    seq = known.next_seq if known else 1
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
    latest = cache.get(key)  # a concurrent read may have stored a longer history meanwhile
    if latest is None or latest.next_seq < seq:
        cache[key] = _Known(tuple(events), seq)
    cache.move_to_end(key)
    while len(cache) > CACHED_TICKETS:
        cache.popitem(last=False)
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
