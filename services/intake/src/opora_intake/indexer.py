"""Keeps the ticket index (``opora_tickets`` KV) current: every event refreshes its ticket.

A durable consumer on every event subject. The handler reads tenant and ticket from the subject
(``opora.ev.<tenant>.<family>.<ticket>.<name>``), folds the ticket again and stores the summary
when it is newer (see ``opora_shared.ticket_index``). Idempotent, so replicas and redeliveries
are harmless; the list endpoint reads the index.

FastStream handles a fetched batch concurrently, and under load a batch holds several events of
one ticket (received, classified, assigned, armed...): those handlers share one refresh, which
starts after they have all joined, so it reads a history that holds every one of their events.
A handler that arrives once its ticket's refresh has begun waits for a new one.
"""

import asyncio
from collections.abc import Awaitable, Callable

from faststream.nats import NatsBroker

from opora_shared import subjects
from opora_shared.errors import PoisonMessageError
from opora_shared.nats.broker import NatsMessage, durable_consumer, jetstream
from opora_shared.settings import OporaSettings
from opora_shared.ticket_index import TicketIndex

DURABLE = "ticket-index"


class Coalescer:
    """Runs one job per key for all the callers that ask before it starts."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.runs = 0
        self.calls = 0

    async def run(self, key: tuple[str, str], job: Callable[[], Awaitable[object]]) -> None:
        """Join the job queued for ``key`` or queue one; return when it has run (or raise)."""
        self.calls += 1
        future = self._waiting.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # retrieved here, so that a failure nobody waits for any more is not logged as lost
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._waiting[key] = future
            # a task of its own, started after the handlers already scheduled (the rest of the
            # batch) have had their turn to join
            task = asyncio.get_running_loop().create_task(self._start(key, job, future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.shield(future)

    async def _start(
        self,
        key: tuple[str, str],
        job: Callable[[], Awaitable[object]],
        future: asyncio.Future[None],
    ) -> None:
        await asyncio.sleep(0)
        del self._waiting[key]  # from here on, a new caller needs a new run
        self.runs += 1
        try:
            await job()
        except Exception as exc:  # every joined handler fails, and its message is retried
            future.set_exception(exc)
        else:
            future.set_result(None)


def register(broker: NatsBroker, settings: OporaSettings) -> None:
    """Attach the indexer's subscriber to the intake's broker."""
    index: list[TicketIndex] = []
    coalescer = Coalescer()

    @broker.subscriber(
        f"{subjects.EVENTS_PREFIX}.>",
        title="any event:index",
        description="Refreshes the ticket's summary in the opora_tickets bucket.",
        **durable_consumer(settings, DURABLE),
    )
    async def refresh(msg: NatsMessage) -> None:
        """Fold the ticket of this event again and store its summary if newer."""
        parts = msg.raw_message.subject.split(".")
        if len(parts) != 6:
            msg_ = f"not an event subject: {len(parts)} tokens"
            raise PoisonMessageError(msg_)
        tenant, ticket_id = parts[2], parts[4]
        if not index:
            index.append(TicketIndex(jetstream(broker)))
        await coalescer.run((tenant, ticket_id), lambda: index[0].refresh(tenant, ticket_id))
