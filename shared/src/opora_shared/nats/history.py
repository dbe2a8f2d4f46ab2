"""Reading events back from the stream: one ticket's history, or its last event of a kind."""

import logging
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from opora_shared import subjects
from opora_shared.events import Event, TicketReceived, parse_event

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


async def ticket_events(
    js: JetStreamContext, ticket_id: str, *, tenant: str = "*", until: int | None = None
) -> list[Event]:
    """Every event of one ticket, oldest first, read with direct gets (no consumer created).

    ``until``: the stream sequence of an event the caller holds; the events up to it are
    enough (a consumer that sees every event folds the later ones when they reach it), so the
    read stops there instead of asking for more, and reads nothing when they are known already.
    """
    subject = subjects.ticket_history(ticket_id, tenant=tenant)
    cache, key = _cache(js), (tenant, ticket_id)
    known = cache.get(key)
    if known is not None and until is not None and known.next_seq > until:
        cache.move_to_end(key)
        return list(known.events)
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
        if until is not None and raw.seq >= until:
            break
    _remember(cache, key, events, seq)
    return events


def _remember(
    cache: "OrderedDict[tuple[str, str], _Known]",
    key: tuple[str, str],
    events: Sequence[Event],
    next_seq: int,
) -> None:
    latest = cache.get(key)  # a concurrent read may have stored a longer history meanwhile
    if latest is None or latest.next_seq < next_seq:
        cache[key] = _Known(tuple(events), next_seq)
    cache.move_to_end(key)
    while len(cache) > CACHED_TICKETS:
        cache.popitem(last=False)


class Feed:
    """Extends the remembered histories with the events a consumer is delivered.

    For a consumer delivered every event of the stream in stream order (the ticket index): it
    holds each event anyway, and reading it back (with a direct get on a subject with
    wildcards, which nats-server answers by scanning every message stored since the previous
    event of the ticket: 0.1-0.3 ms of server time in a burst) is the index's main cost.

    An event extends a ticket's remembered history only when nothing can be missing between:
    the consumer's deliveries since the history's end were all to this process, with no gap in
    the consumer sequence (a gap is a delivery to another replica, or one this process lost),
    and first deliveries come in stream order. So the history is complete up to the event when
    it was complete up to at least the start of that run of deliveries. A ticket's receipt
    starts its history. Anything else is left for ``ticket_events`` to read.
    """

    def __init__(self) -> None:
        self._consumer_seq: int | None = None
        self._run_from: int | None = None
        """Every event from this stream sequence to the last first delivery reached us."""

    def take(self, js: JetStreamContext, messages: Sequence[Msg]) -> None:
        """Take a fetched batch's deliveries, in the order they came."""
        cache = _cache(js)
        for raw in messages:
            try:
                meta = raw.metadata
            except NatsError:  # not delivered by JetStream: no sequences to reason with
                self._consumer_seq = self._run_from = None
                continue
            stream_seq, consumer_seq = meta.sequence.stream, meta.sequence.consumer
            if self._consumer_seq is None or consumer_seq != self._consumer_seq + 1:
                self._run_from = None  # a gap: some delivery did not reach this process
            self._consumer_seq = consumer_seq
            if meta.num_delivered != 1:
                continue  # a redelivery of what the first delivery brought already
            if self._run_from is None:
                self._run_from = stream_seq
            self._extend(cache, raw, stream_seq)

    def _extend(
        self, cache: "OrderedDict[tuple[str, str], _Known]", raw: Msg, stream_seq: int
    ) -> None:
        parts = raw.subject.split(".")
        if len(parts) != 6 or not raw.data:
            return
        key = (parts[2], parts[4])
        known = cache.get(key)
        run_from = self._run_from
        if known is not None and (known.next_seq > stream_seq or known.next_seq < (run_from or 0)):
            return  # known already, or the history ends before this run: something may miss
        try:
            event = parse_event(raw.data)
        except ValueError:
            return  # the reader logs and skips it
        if known is None:
            if isinstance(event, TicketReceived):  # a ticket's first event
                _remember(cache, key, (event,), stream_seq + 1)
            return
        _remember(cache, key, (*known.events, event), stream_seq + 1)


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
