"""Batch stages: a fetched batch handled at once, its events stored with one commit.

A stage takes each fetched batch whole (one FastStream call, not one per message), works out
every message's events, and stores them together:

- up to ``ATOMIC_MIN - 1`` events go out as single acknowledged publishes, in flight together;
- from ``ATOMIC_MIN`` on, as one atomic batch (ADR-50: ``Nats-Batch-Id``/``-Sequence``/
  ``-Commit``), which the server stores with one write and one fsync. On nats-server 2.15.1 a
  batch costs about 2 ms of server time whatever its size, so small ones lose to single
  publishes and large ones win by far (``bench/bench_batch_publish.py``: batches of 50 store
  18,600 messages/s, single publishes 4,600/s, with ``sync_interval: always``).

``Writer`` stores any stream's messages this way (KV writes keep their compare-and-set in the
batch, ``Nats-Expected-Last-Subject-Sequence``); ``EventWriter`` stores events. The server
refuses a whole batch when any of its messages repeats a ``Nats-Msg-Id`` seen within the
duplicate window (error 10201: a redelivered trigger whose events were stored already), when a
compare-and-set in it fails (error 10071: another replica wrote the key first), and when the
stream does not allow atomic batches (one created before them and not provisioned since): the
messages then go out one by one, each duplicate or conflict reported as such. So a stage is
exactly as idempotent as the per-message handlers it replaces.

A message whose work or events failed is retried with back-off or dead-lettered by the same
rules as the middleware (``settle_failed``); FastStream acknowledges the others when the stage
returns. Its FastStream metrics count messages, as a per-message handler's do; the events of an
atomic batch are counted as published under their subjects' shapes.

FastStream's own batch subscriber keeps fetching until the batch is full or the fetch times out
(a second at most, ``FETCH_TIMEOUT_S``), which is right for the ticket index but would hold a
lone ticket for that second at every stage: ``prompt`` makes a subscriber hand over what each
fetch returned, at once, as the per-message subscriber does. It replaces the fetch loop of
FastStream 0.7's ``BatchPullStreamSubscriber`` (``_consume_pull``, an internal method; the
dependency is pinned below 0.8, and ``tests/integration/test_stage.py`` fails if a lone message
waits for the fetch to run out).
"""

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fast_depends.pydantic._compat import create_model, get_config_base
from faststream.nats import NatsBroker
from faststream.nats.subscriber.usecases.stream_pull_subscriber import (
    BatchPullStreamSubscriber,
)
from faststream.prometheus.types import PublishingStatus
from faststream.specification.asyncapi.message import get_model_schema
from faststream.specification.asyncapi.utils import to_camelcase
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import ServiceUnavailableError

from opora_shared import subjects
from opora_shared.events.base import Event
from opora_shared.nats.broker import NatsBatch, durable_consumer, jetstream
from opora_shared.nats.deadletter import settle_failed
from opora_shared.nats.metrics import metrics_manager
from opora_shared.nats.publish import event_headers, publish_event
from opora_shared.settings import OporaSettings

log = logging.getLogger(__name__)

ATOMIC_MIN = 8
"""Events from which a stage stores them as one atomic batch rather than single publishes."""

ATOMIC_MAX = 1000
"""nats-server's limit on the messages of one atomic batch."""


class _PromptBatchSubscriber(BatchPullStreamSubscriber):
    """A batch pull subscriber that hands over each fetch's messages without waiting for more."""

    __slots__ = ()

    async def _consume_pull(self) -> None:
        assert self.subscription, "the subscription is created before the fetch loop"  # noqa: S101
        while self.running:
            try:
                messages = await self.subscription.fetch(
                    batch=self.pull_sub.batch_size, timeout=self.pull_sub.timeout
                )
            except (TimeoutError, ConnectionClosedError, ServiceUnavailableError):
                continue  # idle, or NATS away: nothing was taken, ask again
            if messages and self.running:
                await self.consume(messages)


def prompt(subscriber: Any, *, payload: Any = None) -> Any:
    """Make a batch subscriber (``durable_consumer(..., batch=True)``) hand over partial batches.

    ``payload``: the type of each message, for the AsyncAPI document (a batch handler's own
    signature names only the batch).
    """
    if not isinstance(subscriber, BatchPullStreamSubscriber):
        msg = f"not a batch pull subscriber: {type(subscriber).__name__}"
        raise TypeError(msg)
    subscriber.__class__ = _PromptBatchSubscriber
    if payload is not None:
        spec = subscriber.specification
        spec.__class__ = _documented(type(spec), payload)  # type: ignore[arg-type]
    return subscriber


@functools.cache
def _documented(base: type, payload: Any) -> type:
    """A subscriber specification class whose message payload is ``payload``."""

    def get_payloads(self: Any) -> list[tuple[dict[str, Any], str]]:
        body = get_model_schema(
            call=create_model("", __config__=get_config_base(), response__=(payload, ...)),
            prefix=f"{self.config.title_ or self.call_name}:Message",
        )
        return [(body or {}, to_camelcase(self.call_name))]

    name = getattr(payload, "__name__", "Payload")
    return type(
        f"{base.__name__}Of{name}", (base,), {"__slots__": (), "get_payloads": get_payloads}
    )


@dataclass(slots=True)
class Stored:
    """The outcome of storing a stage's events: which were duplicates, which failed."""

    duplicate: list[bool] = field(default_factory=list)
    errors: list[Exception | None] = field(default_factory=list)
    atomic: bool = False
    sequences: list[int | None] = field(default_factory=list)
    """Each message's stream sequence (a KV entry's revision), None when it failed."""


class BatchRefused(Exception):
    """The server refused an atomic batch (the error's code and description)."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"atomic batch refused ({code}): {description}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Record:
    """One message to store: its subject, body and headers (``Nats-Msg-Id`` among them)."""

    subject: str
    data: bytes
    headers: dict[str, str]


def kv_record(bucket: str, key: str, value: bytes, revision: int | None) -> Record:
    """A KV write as a message: ``key`` set to ``value`` if its revision is still ``revision``
    (None or 0: the key must not exist), the compare-and-set ``kv.update`` and ``kv.create`` make.
    """
    return Record(
        f"$KV.{bucket}.{key}", value, {"Nats-Expected-Last-Subject-Sequence": str(revision or 0)}
    )


class Writer:
    """Stores a stage's messages in one stream: single publishes for a few, one atomic batch
    for many, and single publishes again when the server refuses the batch."""

    def __init__(
        self,
        broker: NatsBroker | JetStreamContext,
        *,
        timeout: float = 5.0,
        counted: bool = False,
    ) -> None:
        self.broker = broker
        """The service's broker, or a JetStream context (then nothing is counted)."""
        self.timeout = timeout
        self.counted = counted
        """Count atomic batches in FastStream's published-message metrics (events are)."""
        self.atomic_batches = 0
        self.fallbacks = 0

    async def store(
        self, records: Sequence[Record], single: Callable[[int], Awaitable[PubAck | int]]
    ) -> Stored:
        """Store ``records`` in order; ``single(i)`` publishes the i-th alone, acknowledged
        (its ``PubAck``, or the sequence it was stored at: a KV write's revision).

        Never raises for one record's failure: ``Stored.errors`` says which failed.
        """
        if ATOMIC_MIN <= len(records) <= ATOMIC_MAX:
            try:
                last = await self._atomic(records)
            except Exception as exc:  # refused, or no answer: one by one, each told apart
                self.fallbacks += 1
                log.info("storing %d messages one by one: %s", len(records), exc)
            else:
                self.atomic_batches += 1
                if self.counted:
                    self._count(records)
                first = last - len(records) + 1  # a batch is stored in one run of sequences
                return Stored(
                    [False] * len(records),
                    [None] * len(records),
                    atomic=True,
                    sequences=list(range(first, last + 1)),
                )
        outcomes = await asyncio.gather(
            *(single(i) for i in range(len(records))), return_exceptions=True
        )
        stored = Stored()
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                stored.duplicate.append(False)
                stored.errors.append(outcome)
                stored.sequences.append(None)
            elif isinstance(outcome, BaseException):
                raise outcome
            elif isinstance(outcome, int):
                stored.duplicate.append(False)
                stored.errors.append(None)
                stored.sequences.append(outcome)
            else:
                stored.duplicate.append(bool(outcome.duplicate))
                stored.errors.append(None)
                stored.sequences.append(outcome.seq)
        return stored

    async def _atomic(self, records: Sequence[Record]) -> int:
        """One atomic batch: every message but the last sent as is, the last commits; the
        stream sequence of the last."""
        js = self.broker if isinstance(self.broker, JetStreamContext) else jetstream(self.broker)
        nc = js._nc  # the connection behind the context
        batch_id = uuid.uuid4().hex  # the server tracks open batches by id, per stream
        last = len(records) - 1
        for i, record in enumerate(records):
            headers = {
                **record.headers,
                "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(i + 1),
            }
            if i < last:
                await nc.publish(record.subject, record.data, headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            reply = await nc.request(
                record.subject, record.data, headers=headers, timeout=self.timeout
            )
            answer = json.loads(reply.data or b"{}")
            error = answer.get("error")
            if error:
                raise BatchRefused(int(error.get("err_code", 0)), str(error.get("description")))
            if answer.get("count") != len(records):
                msg = f"atomic batch stored {answer.get('count')} of {len(records)}"
                raise BatchRefused(0, msg)
        return int(answer["seq"])

    def _count(self, records: Sequence[Record]) -> None:
        """Published-message metrics for an atomic batch, as FastStream counts single ones."""
        manager = (
            None if isinstance(self.broker, JetStreamContext) else metrics_manager(self.broker)
        )
        if manager is None:
            return
        shapes: dict[str, int] = {}
        for record in records:
            shape = subjects.metric_subject(record.subject)
            shapes[shape] = shapes.get(shape, 0) + 1
        for shape, amount in shapes.items():
            manager.add_published_message(
                amount=amount, status=PublishingStatus.success, broker="nats", destination=shape
            )


class EventWriter(Writer):
    """A ``Writer`` of events to the events stream, each published alone as ``publish_event``."""

    def __init__(self, broker: NatsBroker, *, timeout: float = 5.0) -> None:
        super().__init__(broker, timeout=timeout, counted=True)
        self.service = broker
        """The service's broker (events go out through its publishers' path when alone)."""

    async def store_events(self, events: Sequence[Event]) -> Stored:
        """Store ``events`` (deduplicated by their ids)."""
        records = [
            Record(
                subjects.event_subject(event),
                event.model_dump_json().encode(),
                {**event_headers(event), "content-type": "application/json"},
            )
            for event in events
        ]
        return await self.store(
            records, lambda i: publish_event(self.service, events[i], timeout=self.timeout)
        )


Work = Callable[[Msg], Awaitable[Sequence[Event]]]
"""A stage's work on one message: the events it stores (decoding errors raise, as usual)."""


async def run_stage(
    messages: Sequence[Msg],
    work: Work,
    *,
    writer: EventWriter,
    consumer: str,
    max_deliver: int,
    stored: Callable[[Event, bool], None] | None = None,
) -> None:
    """Work out every message's events, store them together, settle the failures.

    ``stored`` is told of each event once it is stored, with whether it was a duplicate.
    Messages that are not settled here are acknowledged by FastStream when the stage returns.
    """
    outcomes = await asyncio.gather(*(work(raw) for raw in messages), return_exceptions=True)
    failed: dict[int, Exception] = {}
    events: list[Event] = []
    owners: list[int] = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Exception):
            failed[index] = outcome
        elif isinstance(outcome, BaseException):
            raise outcome  # cancelled: nothing settled, the batch is redelivered
        else:
            events.extend(outcome)
            owners.extend([index] * len(outcome))
    result = await writer.store_events(events) if events else Stored()
    for event, owner, duplicate, error in zip(
        events, owners, result.duplicate, result.errors, strict=True
    ):
        if error is not None:
            failed.setdefault(owner, error)
        elif stored is not None:
            stored(event, duplicate)
    for index, exc in failed.items():
        await settle_failed(writer.service, consumer, messages[index], exc, max_deliver=max_deliver)


async def each(
    messages: Sequence[Msg],
    handle: Callable[[Msg], Awaitable[object]],
    *,
    broker: NatsBroker,
    consumer: str,
    max_deliver: int,
) -> None:
    """Handle every message of a batch, all in flight together, and settle the failures.

    What FastStream's per-message subscriber does with a fetched batch (a task per message),
    without its per-message middlewares and dependency injection; ``handle`` decodes the
    message itself. Messages that are not settled here are acknowledged when the stage returns.
    """
    outcomes = await asyncio.gather(*(handle(raw) for raw in messages), return_exceptions=True)
    for raw, outcome in zip(messages, outcomes, strict=True):
        if isinstance(outcome, Exception):
            await settle_failed(broker, consumer, raw, outcome, max_deliver=max_deliver)
        elif isinstance(outcome, BaseException):
            raise outcome  # cancelled: the rest is not settled, the batch is redelivered


def each_message(
    broker: NatsBroker,
    settings: OporaSettings,
    handle: Callable[[Msg], Awaitable[object]],
    *,
    subject: str,
    durable: str,
    service: str,
    payload: Any,
    title: str,
    description: str,
    name: str | None = None,
    stream: Any = None,
) -> Any:
    """Subscribe ``handle`` to every message of ``subject``, a prompt batch at a time (``each``).

    ``service`` names the dead-letter subject; ``payload`` documents the message; ``name`` is
    the handler's name in the AsyncAPI document (``handle``'s by default); ``stream`` binds
    another stream than the events'.
    """
    options = durable_consumer(settings, durable, batch=True)
    if stream is not None:
        options["stream"] = stream
    subscriber = prompt(
        broker.subscriber(subject, title=title, description=description, **options),
        payload=payload,
    )

    async def handler(batch: NatsBatch) -> None:
        await each(
            batch.raw_message,
            handle,
            broker=broker,
            consumer=service,
            max_deliver=settings.max_deliver,
        )

    handler.__name__ = handler.__qualname__ = name or handle.__name__
    return subscriber(handler)
