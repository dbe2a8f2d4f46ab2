"""SLA timer subscribers: ticket events arm and move the clocks; fired timers become events."""

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from faststream.nats import JStream, NatsBroker
from pydantic import BaseModel, Field

from opora_shared import subjects
from opora_shared.contract_store import ContractStore
from opora_shared.events import (
    SlaArmed,
    SlaBreached,
    SlaWarning,
    TicketAssigned,
    TicketClassified,
    TicketEscalated,
    TicketReceived,
    TicketUpdated,
    derive_id,
)
from opora_shared.nats.broker import EVENTS, durable_consumer, jetstream
from opora_shared.nats.publish import publish_event
from opora_shared.vocabulary import SlaTarget
from opora_sla_timer import clocks
from opora_sla_timer.adapters.schedules import Schedules
from opora_sla_timer.adapters.state_kv import SlaStateStore
from opora_sla_timer.clocks import SlaState, TimerKind
from opora_sla_timer.deadlines import calendar_of
from opora_sla_timer.metrics import SlaMetrics
from opora_sla_timer.settings import SlaTimerSettings

log = logging.getLogger(__name__)

SLA = JStream(subjects.SLA_STREAM, declare=False)

TicketEvent = Annotated[
    TicketReceived | TicketClassified | TicketUpdated | TicketAssigned, Field(discriminator="type")
]


class TimerFired(BaseModel):
    """What a schedule delivers when it falls due."""

    ticket_id: str
    tenant: str
    target: SlaTarget
    kind: TimerKind
    generation: int
    due: datetime


def register(
    broker: NatsBroker,
    settings: SlaTimerSettings,
    *,
    contracts: ContractStore,
    metrics: SlaMetrics,
    clock: Callable[[], datetime],
) -> None:
    """Attach the sla-timer's subscribers and publishers to a broker."""
    publishers = {
        cls: broker.publisher(
            subjects.event_template(cls),
            stream=EVENTS,
            schema=cls,
            title=cls.event_type(),
            description=cls.__doc__,
        )
        for cls in (SlaArmed, SlaWarning, SlaBreached, TicketEscalated)
    }

    cache: dict[str, tuple[SlaStateStore, Schedules]] = {}

    def stores() -> tuple[SlaStateStore, Schedules]:
        # built once per connection: the KV handle costs a round trip to look up
        if "stores" not in cache:
            js = jetstream(broker)
            cache["stores"] = (SlaStateStore(js), Schedules(js))
        return cache["stores"]

    async def announce(state: SlaState) -> None:
        """Publish the current deadlines (SlaArmed, one per state version)."""
        await publish_event(
            publishers[SlaArmed],
            SlaArmed(
                event_id=derive_id(state.ticket_id, SlaArmed.event_type(), str(state.version)),
                occurred_at=clock(),
                tenant=state.tenant,
                ticket_id=state.ticket_id,
                priority=state.priority,
                first_response_due=state.clocks[SlaTarget.FIRST_RESPONSE].due,
                resolution_due=state.clocks[SlaTarget.RESOLUTION].due,
                timezone=state.timezone,
                generation=state.version,
            ),
        )

    @broker.subscriber(
        subjects.event_pattern(TicketReceived).replace(".received", ".*"),
        title="ticket.*:clocks",
        # received and assigned change no clock: only classified and updated are delivered
        # (a consumer created by an older version still gets them all, and skips them below)
        **durable_consumer(
            settings,
            "sla-timer-tickets",
            filter_subjects=[
                subjects.event_pattern(TicketClassified),
                subjects.event_pattern(TicketUpdated),
            ],
        ),
    )
    async def on_ticket(event: TicketEvent) -> None:
        """Arm the clocks of a classified ticket; stop, pause, resume or re-arm them on updates."""
        if isinstance(event, TicketReceived | TicketAssigned):
            return
        contract = contracts.book.get(event.tenant)
        if contract is None:
            return  # no contract, no clocks (the unknown tenant)
        store, schedules = stores()
        state, revision = await store.load(event.ticket_id)
        timeline = calendar_of(contract)
        if isinstance(event, TicketClassified):
            new = state or clocks.arm(
                contract,
                ticket_id=event.ticket_id,
                priority=event.priority,
                received_at=event.received_at,
                timeline=timeline,
            )
        elif state is None:
            return  # an update of a ticket that was never armed
        else:
            new = clocks.apply(
                state,
                event.change,
                event.occurred_at,
                contract=contract,
                timeline=timeline,
                priority=event.priority,
            )
            if new.version == state.version:
                return
        previous = clocks.timers(state) if state else []
        await schedules.sync(new, clocks.timers(new), previous)
        if new is not state:
            await store.save(new, revision)
        await announce(new)
        if state is None:
            metrics.armed.labels(new.tenant, new.priority).inc()
        for target in clocks.met(state, new):
            metrics.clocks.labels(new.tenant, new.priority, target, "met").inc()

    @broker.subscriber(
        subjects.SLA_FIRE_ALL,
        title="sla.fire:emit",
        **{**durable_consumer(settings, "sla-timer-fire"), "stream": SLA},
    )
    async def on_fire(fired: TimerFired) -> None:
        """A timer fell due: emit its warning or breach (and escalation) once, unless stale."""
        store, _ = stores()
        state, revision = await store.load(fired.ticket_id)
        if state is None:
            return
        now = clock()
        contract = contracts.book.get(state.tenant)
        firing, new = clocks.fire(state, fired.target, fired.kind, fired.generation, now, contract)
        if firing is None:
            return
        await emit(new, firing, fired.generation, now)
        await store.save(new, revision)  # a conflict raises: redelivered, re-judged
        metrics.lateness.observe(firing.late_by.total_seconds())

    async def emit(state: SlaState, firing: clocks.Firing, generation: int, now: datetime) -> None:
        tenant, ticket_id = state.tenant, state.ticket_id
        key = (state.ticket_id, firing.target.value, firing.kind.value, str(generation))
        late = round(firing.late_by.total_seconds(), 3)
        if firing.kind is TimerKind.WARNING:
            await publish_event(
                publishers[SlaWarning],
                SlaWarning(
                    event_id=derive_id(*key),
                    target=firing.target,
                    due_at=firing.due,
                    threshold=state.warn_at,
                    late_by_s=late,
                    occurred_at=now,
                    tenant=tenant,
                    ticket_id=ticket_id,
                ),
            )
            metrics.events.labels(state.tenant, "warning").inc()
            return
        await publish_event(
            publishers[SlaBreached],
            SlaBreached(
                event_id=derive_id(*key),
                target=firing.target,
                due_at=firing.due,
                late_by_s=late,
                occurred_at=now,
                tenant=tenant,
                ticket_id=ticket_id,
            ),
        )
        metrics.events.labels(state.tenant, "breach").inc()
        metrics.clocks.labels(state.tenant, state.priority, firing.target, "breached").inc()
        if firing.escalation is not None:
            await publish_event(
                publishers[TicketEscalated],
                TicketEscalated(
                    event_id=derive_id(*key, "escalated"),
                    level=firing.escalation.level,
                    target=firing.target,
                    notify=firing.escalation.notify,
                    reason=firing.escalation.reason,
                    occurred_at=now,
                    tenant=tenant,
                    ticket_id=ticket_id,
                ),
            )
            metrics.events.labels(state.tenant, "escalation").inc()
        log.info(
            "ticket %s: %s %s breached (late %.1fs)",
            state.ticket_id,
            firing.target,
            firing.kind,
            late,
        )
