"""SLA timer subscribers: TicketClassified in, SlaArmed (the real deadlines) out."""

import logging
from collections.abc import Callable
from datetime import datetime

from faststream.nats import NatsBroker

from opora_shared import subjects
from opora_shared.contract_store import ContractStore
from opora_shared.events import SlaArmed, TicketClassified, derive_id
from opora_shared.nats.broker import EVENTS, durable_consumer
from opora_shared.nats.publish import publish_event
from opora_sla_timer.deadlines import deadlines
from opora_sla_timer.metrics import SlaMetrics
from opora_sla_timer.settings import SlaTimerSettings

log = logging.getLogger(__name__)

DURABLE = "sla-timer"


def register(
    broker: NatsBroker,
    settings: SlaTimerSettings,
    *,
    contracts: ContractStore,
    metrics: SlaMetrics,
    clock: Callable[[], datetime],
) -> None:
    """Attach the sla-timer's subscribers and publishers to a broker."""
    armed = broker.publisher(
        subjects.event_template(SlaArmed),
        stream=EVENTS,
        schema=SlaArmed,
        title="sla.armed",
        description="The contract's clocks started; carries the real deadlines.",
    )

    @broker.subscriber(
        subjects.event_pattern(TicketClassified),
        title="ticket.classified:arm",
        **durable_consumer(settings, DURABLE),
    )
    async def arm(event: TicketClassified) -> None:
        """Start the first-response and resolution clocks of a classified ticket."""
        contract = contracts.book.get(event.tenant)
        if contract is None:
            log.info("ticket %s has no contract: no clocks", event.ticket_id)
            return
        due = deadlines(contract, event.priority, event.received_at)
        result = SlaArmed(
            event_id=derive_id(event.ticket_id, SlaArmed.event_type(), str(event.event_id)),
            occurred_at=clock(),
            tenant=event.tenant,
            ticket_id=event.ticket_id,
            priority=event.priority,
            first_response_due=due.first_response_due,
            resolution_due=due.resolution_due,
            timezone=contract.calendar.timezone,
        )
        ack = await publish_event(armed, result)
        if not ack.duplicate:
            metrics.armed.labels(event.tenant, event.priority).inc()
