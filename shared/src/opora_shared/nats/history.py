"""Reading events back from the stream: one ticket's history, or its last event of a kind."""

import asyncio
import json
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TypeVar

from nats.errors import Error as NatsError
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
    """Every event of one ticket, oldest first, read with batched direct gets (no consumer)."""
    subject = subjects.ticket_history(ticket_id, tenant=tenant)
    cache, key = _cache(js), (tenant, ticket_id)
    known = cache.get(key)
    events: list[Event] = list(known.events) if known else []
    seq = known.next_seq if known else 1
    for _ in range(MAX_HISTORY // BATCH + 1):
        found = await _batches(js).read(subjects.EVENTS_STREAM, subject, seq)
        for stored_at, data in found:
            if data:
                try:
                    events.append(parse_event(data))
                except ValueError:
                    log.warning(
                        "unreadable event at %s seq %s skipped", subjects.EVENTS_STREAM, stored_at
                    )
            seq = stored_at + 1
        if len(found) < BATCH:
            break
    latest = cache.get(key)  # a concurrent read may have stored a longer history meanwhile
    if latest is None or latest.next_seq < seq:
        cache[key] = _Known(tuple(events), seq)
    cache.move_to_end(key)
    while len(cache) > CACHED_TICKETS:
        cache.popitem(last=False)
    return events


BATCH = 256
"""Messages one batched direct get asks for; a longer history is read in several."""


class _Batches:
    """Batched direct gets (NATS 2.11+): one request, the messages, then an end-of-batch status.

    A ticket's history used to cost one direct get per event plus one that found nothing (17
    requests per storm ticket across the index, routing and the notifier); a batched get asks
    once and the stream answers with every message after ``seq`` on the subject, then an empty
    message with status 204 (EOB), or 404 when there is none. Replies come to one wildcard
    subscription per connection and are routed to the read that asked by their reply subject.
    """

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._nc: Any = getattr(js, "_nc", None)
        self._prefix = self._nc.new_inbox() if self._nc is not None else ""
        self._waiting: dict[str, asyncio.Queue[Any]] = {}
        self._sub: Any = None
        self._opening = asyncio.Lock()
        self._count = 0

    async def _subscribed(self) -> None:
        async with self._opening:
            if self._sub is None:
                self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._route)

    async def _route(self, msg: Any) -> None:
        queue = self._waiting.get(msg.subject)
        if queue is not None:
            queue.put_nowait(msg)

    async def read(
        self, stream: str, subject: str, seq: int, *, timeout: float = 5.0
    ) -> list[tuple[int, bytes]]:
        """(sequence, data) of up to ``BATCH`` messages on ``subject`` from ``seq`` on."""
        if self._sub is None:
            await self._subscribed()
        self._count += 1
        reply = f"{self._prefix}.{self._count}"
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._waiting[reply] = queue
        request = {"seq": seq, "next_by_subj": subject, "batch": BATCH}
        prefix = getattr(self._js, "_prefix", "$JS.API")
        found: list[tuple[int, bytes]] = []
        try:
            await self._nc.publish(
                f"{prefix}.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=reply
            )
            async with asyncio.timeout(timeout):
                while True:
                    msg = await queue.get()
                    headers = msg.headers or {}
                    status = headers.get("Status")
                    if status is None:
                        found.append((int(headers["Nats-Sequence"]), bytes(msg.data or b"")))
                    elif status in ("204", "404"):  # end of batch; nothing (more) to read
                        return found
                    else:
                        description = headers.get("Description", "")
                        msg_ = f"direct get from {stream}: {status} {description}".strip()
                        raise NatsError(msg_)
        finally:
            del self._waiting[reply]


_readers: "weakref.WeakKeyDictionary[Any, _Batches]" = weakref.WeakKeyDictionary()


def _batches(js: JetStreamContext) -> _Batches:
    connection = getattr(js, "_nc", js)
    try:
        reader = _readers.get(connection)
        if reader is None:
            reader = _readers[connection] = _Batches(js)
    except TypeError:  # not weak-referenceable
        return _Batches(js)
    return reader


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
