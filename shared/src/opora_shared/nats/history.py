"""Reading events back from the stream: one ticket's history, or its last event of a kind."""

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from opora_shared import subjects
from opora_shared.events import Event, decode, parse_event

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

MAX_HISTORY = 10_000
"""A bound on one ticket's history, so that no read can loop for ever."""

CACHED_TICKETS = 4096
"""Histories remembered per connection (least recently used go first)."""


@dataclass(frozen=True, slots=True)
class _Known:
    events: tuple[bytes, ...]
    """The events' JSON, parsed on every read.

    Parsed events (a model, its fields set, its dict, a UUID, nested models: about 20 objects a
    ticket) would live as long as the ticket is remembered, and the garbage collector's full
    collections walked all of them again and again: 50-100 ms pauses of the event loop every
    few seconds at 100 tickets/s, measured in the notifier with ``gc.callbacks``. Bytes are not
    tracked by the collector; parsing four events again costs about 12 us.
    """
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


def _connection(js: JetStreamContext) -> Any:
    """The connection behind a JetStream context: what remembered histories and taps are per."""
    return getattr(js, "_nc", js)


def _cache(js: JetStreamContext) -> "OrderedDict[tuple[str, str], _Known]":
    try:
        return _known.setdefault(_connection(js), OrderedDict())
    except TypeError:  # not weak-referenceable: no cache
        return OrderedDict()


async def ticket_events(
    js: JetStreamContext,
    ticket_id: str,
    *,
    tenant: str = "*",
    until: int | None = None,
    seen: int | None = None,
) -> list[Event]:
    """Every event of one ticket, oldest first, read with direct gets (no consumer created).

    ``until``: the stream sequence of an event the caller holds; the events up to it are
    enough (a consumer that sees every event folds the later ones when they reach it), so the
    read stops there instead of asking for more, and reads nothing when they are known already.

    ``seen``: the stream sequence of an event of the ticket the caller holds. When this
    connection's ``tap`` has passed it, the remembered history is whole up to where the tap is
    (the history as it stood a moment ago, as any read is) and nothing is read; the tap is
    waited for up to ``TAP_WAIT_S``. Otherwise the history is read up to its end.
    """
    subject = subjects.ticket_history(ticket_id, tenant=tenant)
    cache, key = _cache(js), (tenant, ticket_id)
    known = cache.get(key)
    if seen is not None and (known is None or known.next_seq <= seen):
        feed = _taps.get(_connection(js))
        if feed is not None and await feed.reached(seen, TAP_WAIT_S):
            known = cache.get(key)
    bound = until if until is not None else seen
    if known is not None and bound is not None and known.next_seq > bound:
        cache.move_to_end(key)
        return _parsed(key, known.events)
    stored = list(known.events) if known else []
    seq = known.next_seq if known else 1
    for _ in range(MAX_HISTORY):
        try:
            raw = await js.get_msg(
                subjects.EVENTS_STREAM, seq=seq, subject=subject, next=True, direct=True
            )
        except NotFoundError:
            break
        if raw.data:
            stored.append(bytes(raw.data))
        if raw.seq is None:
            break
        seq = raw.seq + 1
        if until is not None and raw.seq >= until:
            break
    _remember(cache, key, stored, seq)
    return _parsed(key, stored)


def _parsed(key: tuple[str, str], stored: Sequence[bytes]) -> list[Event]:
    """A history's events, parsed from their JSON (an unreadable one skipped, with a warning)."""
    events: list[Event] = []
    for item in stored:
        try:
            events.append(parse_event(item))
        except ValueError:
            log.warning("unreadable event of ticket %s skipped", key[1])
    return events


def _remember(
    cache: "OrderedDict[tuple[str, str], _Known]",
    key: tuple[str, str],
    events: Sequence[bytes],
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
        self.position = 0
        """The highest stream sequence taken."""
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._misses = 0

    async def reached(self, seq: int, timeout: float) -> bool:
        """Wait until the feed has taken stream sequence ``seq``; False after ``timeout``.

        After three waits in a row that ran out (the feed stopped), it answers False at once
        until the feed takes something again.
        """
        if self.position >= seq:
            return True
        if self._misses >= 3:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (seq, future)
        self._waiting.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._misses += 1
            return False
        finally:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
        return True

    def take(self, js: JetStreamContext, messages: Sequence[Msg]) -> None:
        """Take a fetched batch's deliveries, in the order they came."""
        self._take(js, messages)
        self._misses = 0
        if self._waiting:
            for seq, future in [w for w in self._waiting if w[0] <= self.position]:
                self._waiting.remove((seq, future))
                if not future.done():
                    future.set_result(None)

    def _take(self, js: JetStreamContext, messages: Sequence[Msg]) -> None:
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
            self.position = max(self.position, stream_seq)
            self._extend(cache, raw, stream_seq)

    def _extend(
        self, cache: "OrderedDict[tuple[str, str], _Known]", raw: Msg, stream_seq: int
    ) -> None:
        parts = raw.subject.split(".")
        if len(parts) != 6 or not raw.data:
            return
        key = (parts[2], parts[4])
        known = cache.get(key)
        if known is None and parts[5] != "received":
            return  # a ticket whose history starts before this process took it up
        run_from = self._run_from
        if known is not None and (known.next_seq > stream_seq or known.next_seq < (run_from or 0)):
            return  # known already, or the history ends before this run: something may miss
        # a receipt, by its subject, is its ticket's first event
        earlier = known.events if known is not None else ()
        _remember(cache, key, (*earlier, bytes(raw.data)), stream_seq + 1)


def stream_seq(raw: Msg) -> int | None:
    """The stream sequence of a message a consumer delivered (None: not from JetStream)."""
    try:
        return int(raw.metadata.sequence.stream)
    except NatsError:
        return None


TAP_WAIT_S = 0.05
"""How long a read that holds an event waits for the tap to pass it, before reading."""

_taps: "weakref.WeakKeyDictionary[Any, Feed]" = weakref.WeakKeyDictionary()


async def tap(js: JetStreamContext) -> Subscription:
    """Feed this connection's remembered histories with every new event (a ``Feed``).

    An ordered push consumer (no acknowledgements, flow controlled, starting at new events)
    delivers every event to this process; ``ticket_events(..., seen=)`` then reads nothing for a
    ticket whose events the tap holds. For processes that read the histories of most tickets
    (routing, the notifier): the tap's deliveries cost them and the server less than the
    direct gets (one per event, and one more that finds nothing) they replace.
    """
    feed = Feed()

    async def take(raw: Msg) -> None:
        feed.take(js, [raw])

    subscription = await js.subscribe(
        f"{subjects.EVENTS_PREFIX}.>",
        stream=subjects.EVENTS_STREAM,
        cb=take,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
    )
    _taps[_connection(js)] = feed
    return subscription


async def untap(js: JetStreamContext, subscription: Subscription) -> None:
    """Stop a ``tap``; reads go to the stream again."""
    _taps.pop(_connection(js), None)
    await subscription.unsubscribe()


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
    return decode(event_cls, raw.data)
