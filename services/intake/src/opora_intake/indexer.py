"""Keeps the ticket index (``opora_tickets`` KV) current: every event refreshes its ticket.

A durable consumer on every event subject, taken a fetched batch at a time: the handler reads
tenant and ticket from each subject (``opora.ev.<tenant>.<family>.<ticket>.<name>``), then
folds each ticket of the batch again, once however many of its events the batch holds (under
load a batch holds several events of one ticket: received, classified, assigned, armed...),
and stores the summary when it is newer (see ``opora_shared.ticket_index``); the summaries of
a batch are written together, as one atomic batch when there are eight or more. Idempotent, so
replicas and redeliveries are harmless; the list endpoint reads the index.

The index holds every event as it is delivered, so it folds a ticket up to the newest of its
events in the batch and reads nothing back: the delivered events extend the ticket's remembered
history (``opora_shared.nats.history.Feed``) when the consumer's sequence shows that none can be
missing in between, which is always the case with one intake and no lost deliveries; otherwise
the history is read from the stream as before. Reading it back had cost 8.5 direct gets per
ticket, each of which nats-server answers by scanning every message stored since the ticket's
previous event (its subject has wildcards), a third of the server's CPU in a burst.

One handler call per batch rather than per event: the index sees every event (about five per
ticket), and FastStream's per-message path (middlewares, dependency injection, a task each) cost
more than the refresh itself. A ticket whose refresh fails has its events retried with back-off
or dead-lettered like any other handler's (``settle_failed``); the rest are acknowledged.
"""

from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from opora_shared import subjects
from opora_shared.errors import PoisonMessageError
from opora_shared.nats.broker import NatsBatch, durable_consumer, jetstream
from opora_shared.nats.deadletter import settle_failed
from opora_shared.nats.history import Feed, stream_seq
from opora_shared.settings import OporaSettings
from opora_shared.ticket_index import TicketIndex

DURABLE = "ticket-index"


def by_ticket(messages: list[Msg]) -> tuple[dict[tuple[str, str], list[Msg]], list[Msg]]:
    """The batch's events grouped by (tenant, ticket), and those that are not event subjects."""
    tickets: dict[tuple[str, str], list[Msg]] = {}
    malformed: list[Msg] = []
    for raw in messages:
        parts = raw.subject.split(".")
        if len(parts) != 6:
            malformed.append(raw)
            continue
        tickets.setdefault((parts[2], parts[4]), []).append(raw)
    return tickets, malformed


def newest(events: list[Msg]) -> int | None:
    """The highest stream sequence among a ticket's events in hand (None: not known)."""
    seqs = [stream_seq(raw) for raw in events]
    known = [seq for seq in seqs if seq is not None]
    return max(known) if known and len(known) == len(seqs) else None


def register(broker: NatsBroker, settings: OporaSettings) -> None:
    """Attach the indexer's subscriber to the intake's broker."""
    index: list[TicketIndex] = []
    feed = Feed()

    async def settle(raw: Msg, exc: Exception) -> None:
        await settle_failed(broker, DURABLE, raw, exc, max_deliver=settings.max_deliver)

    @broker.subscriber(
        f"{subjects.EVENTS_PREFIX}.>",
        title="any event:index",
        description="Refreshes the summaries of the tickets of a fetched batch of events.",
        **durable_consumer(settings, DURABLE, batch=True),
    )
    async def refresh(batch: NatsBatch) -> None:
        """Fold each ticket of the batch again, once, and store its summary if newer."""
        if not index:
            index.append(TicketIndex(jetstream(broker)))
        tickets, malformed = by_ticket(batch.raw_message)
        for raw in malformed:
            tokens = len(raw.subject.split("."))
            await settle(raw, PoisonMessageError(f"not an event subject: {tokens} tokens"))
        feed.take(index[0].js, batch.raw_message)
        outcomes = await index[0].refresh_many(
            list(tickets), [newest(events) for events in tickets.values()]
        )
        for events, outcome in zip(tickets.values(), outcomes, strict=True):
            if outcome is not None:
                for raw in events:
                    await settle(raw, outcome)
