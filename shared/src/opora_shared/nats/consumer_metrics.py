"""Consumer lag, redeliveries and dead letters as Prometheus gauges, read from JetStream.

FastStream's middleware counts what a process handled; it cannot see what waits on the server.
Every few seconds each service asks JetStream about its own durable consumers (pending, waiting
for an ack, redelivered) and counts the dead letters stored for them. The numbers come from
the server, so they survive restarts and are the same whichever replica answers; dashboards
take ``max by (consumer)``. Labels are consumer and stream names: bounded.
"""

import asyncio
import logging
from collections.abc import Iterable

from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Gauge

from opora_shared import subjects
from opora_shared.tasks import stop_task

log = logging.getLogger(__name__)


class ConsumerGauges:
    """The gauges, and the loop that refreshes them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["consumer", "stream"]
        self.pending = Gauge(
            "opora_consumer_pending_messages",
            "Messages in the stream not yet delivered to the durable consumer",
            labels,
            registry=registry,
        )
        self.ack_pending = Gauge(
            "opora_consumer_ack_pending_messages",
            "Messages delivered to the consumer and not acknowledged yet",
            labels,
            registry=registry,
        )
        self.redelivered = Gauge(
            "opora_consumer_redelivered_messages",
            "Messages delivered more than once and not acknowledged yet",
            labels,
            registry=registry,
        )
        self.dead_letters = Gauge(
            "opora_dead_letters",
            "Dead letters stored for the consumer (opora.dlq.<consumer>)",
            ["consumer"],
            registry=registry,
        )
        self.up = Gauge(
            "opora_consumer_info_up",
            "1 when the last read of consumer info from JetStream succeeded",
            registry=registry,
        )
        self._task: asyncio.Task[None] | None = None

    async def refresh(self, js: JetStreamContext, consumers: Iterable[tuple[str, str]]) -> None:
        """Read each (stream, durable) once, and the dead letters per consumer."""
        names = []
        for stream, durable in consumers:
            info = await js.consumer_info(stream, durable)
            self.pending.labels(durable, stream).set(info.num_pending or 0)
            self.ack_pending.labels(durable, stream).set(info.num_ack_pending or 0)
            self.redelivered.labels(durable, stream).set(info.num_redelivered or 0)
            names.append(durable)
        if names:
            dlq = await js.stream_info(
                subjects.DLQ_STREAM, subjects_filter=subjects.dead_letter("*")
            )
            counts = dlq.state.subjects or {}
            for durable in names:
                self.dead_letters.labels(durable).set(counts.get(subjects.dead_letter(durable), 0))

    def start(self, broker: NatsBroker, js: JetStreamContext, *, interval: float = 5.0) -> None:
        """Refresh in the background for the broker's durable subscribers."""
        consumers = durables_of(broker)
        if not consumers or self._task is not None:
            return

        async def loop() -> None:
            while True:
                try:
                    await self.refresh(js, consumers)
                    self.up.set(1)
                except (NatsError, TimeoutError) as exc:
                    self.up.set(0)
                    log.debug("consumer info not read: %s", type(exc).__name__)
                await asyncio.sleep(interval)

        self._task = asyncio.create_task(loop(), name="consumer-gauges")

    async def stop(self) -> None:
        """Stop refreshing."""
        await stop_task(self._task)
        self._task = None


def durables_of(broker: NatsBroker) -> list[tuple[str, str]]:
    """(stream, durable) of every durable pull subscriber of a broker."""
    found = []
    for subscriber in broker.subscribers:
        config = getattr(subscriber, "config", None)
        stream = getattr(subscriber, "stream", None)
        durable = getattr(config, "durable_name", None)
        if stream is not None and durable:
            found.append((str(stream.name), str(durable)))
    return sorted(set(found))
