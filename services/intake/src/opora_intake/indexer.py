"""Keeps the ticket index (``opora_tickets`` KV) current: every event refreshes its ticket.

A durable consumer on every event subject. The handler reads tenant and ticket from the subject
(``opora.ev.<tenant>.<family>.<ticket>.<name>``), folds the ticket again and stores the summary
when it is newer (see ``opora_shared.ticket_index``). Idempotent, so replicas and redeliveries
are harmless; the list endpoint reads the index.
"""

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from opora_shared import subjects
from opora_shared.errors import PoisonMessageError
from opora_shared.nats.broker import durable_consumer, jetstream
from opora_shared.settings import OporaSettings
from opora_shared.ticket_index import TicketIndex

DURABLE = "ticket-index"


def register(broker: NatsBroker, settings: OporaSettings) -> None:
    """Attach the indexer's subscriber to the intake's broker."""
    index: list[TicketIndex] = []

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
        await index[0].refresh(tenant, ticket_id)
