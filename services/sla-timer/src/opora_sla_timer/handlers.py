"""SLA timer subscribers: ticket events arm and move the clocks; fired timers become events."""

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from faststream.nats import JStream, NatsBroker
from nats.aio.msg import Msg
from pydantic import BaseModel, Field, TypeAdapter

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
from opora_shared.events.base import has_upcasters, upcast
from opora_shared.nats.broker import EVENTS, NatsBatch, durable_consumer, jetstream
from opora_shared.nats.deadletter import settle_failed
from opora_shared.nats.publish import publish_event
from opora_shared.nats.stage import EventWriter, Writer, prompt
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
_TICKET_EVENT: TypeAdapter[TicketEvent] = TypeAdapter(TicketEvent)


def _ticket_event(raw: bytes) -> TicketEvent:
    """One ticket event from its JSON, upcast first when an upcaster is registered."""
    if not has_upcasters():
        return _TICKET_EVENT.validate_json(raw)
    payload = json.loads(raw)
    return _TICKET_EVENT.validate_python(upcast(payload) if isinstance(payload, dict) else payload)


SERVICE = "sla-timer"
"""The service's name: its dead letters go to ``opora.dlq.sla-timer``."""


@dataclass(frozen=True, slots=True)
class Change:
    """One ticket's clocks before and after an event, and the revision they were read at."""

    state: SlaState | None
    revision: int
    new: SlaState

    @property
    def previous(self) -> list[clocks.Timer]:
        """The timers that were pending before."""
        return clocks.timers(self.state) if self.state else []


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

    def armed(state: SlaState) -> SlaArmed:
        """The current deadlines (one SlaArmed per state version)."""
        return SlaArmed(
            event_id=derive_id(state.ticket_id, SlaArmed.event_type(), str(state.version)),
            occurred_at=clock(),
            tenant=state.tenant,
            ticket_id=state.ticket_id,
            priority=state.priority,
            first_response_due=state.clocks[SlaTarget.FIRST_RESPONSE].due,
            resolution_due=state.clocks[SlaTarget.RESOLUTION].due,
            timezone=state.timezone,
            generation=state.version,
        )

    async def plan(raw: Msg) -> Change | None:
        """What one ticket event does to its clocks (nothing written yet), or None: nothing."""
        event = _ticket_event(raw.data)
        if isinstance(event, TicketReceived | TicketAssigned):
            return None
        contract = contracts.book.get(event.tenant)
        if contract is None:
            return None  # no contract, no clocks (the unknown tenant)
        store, _ = stores()
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
            return None  # an update of a ticket that was never armed
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
                return None
        return Change(state, revision, new)

    writer = Writer(broker)  # schedules (OPORA_SLA) and states (KV_opora_sla) alike
    event_writer = EventWriter(broker)

    async def apply(messages: Sequence[Msg]) -> None:
        """Plan every message's change, then write them in order, each step for all at once:
        cancelled timers, the schedules, the states (compared and set), the SlaArmed events;
        each of the last three as one atomic batch when it holds eight messages or more.

        A ticket whose step failed goes no further (its message is retried or dead-lettered);
        redone, each step is idempotent: a schedule replaces itself, the state is compared and
        set, the event is deduplicated by its id.
        """
        store, schedules = stores()
        outcomes = await asyncio.gather(*(plan(raw) for raw in messages), return_exceptions=True)
        failed: dict[int, Exception] = {}
        changes: dict[int, Change] = {}
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, Exception):
                failed[index] = outcome
            elif isinstance(outcome, BaseException):
                raise outcome  # cancelled: nothing settled, the batch is redelivered
            elif outcome is not None:
                changes[index] = outcome

        def drop(index: int, exc: BaseException | None) -> None:
            if isinstance(exc, BaseException) and not isinstance(exc, Exception):
                raise exc
            if exc is not None:
                failed[index] = exc
                del changes[index]

        cancelled = await asyncio.gather(
            *(
                schedules.cancel_dropped(c.new, clocks.timers(c.new), c.previous)
                for c in changes.values()
            ),
            return_exceptions=True,
        )
        for index, exc in zip(list(changes), cancelled, strict=True):
            drop(index, exc)

        records, owners = [], []
        for index, change in changes.items():
            batch = schedules.records(change.new, clocks.timers(change.new))
            records.extend(batch)
            owners.extend([index] * len(batch))
        stored = await writer.store(records, lambda i: schedules.publish(records[i]))
        for index, exc in zip(owners, stored.errors, strict=True):
            if exc is not None and index in changes:
                drop(index, exc)

        saving = [i for i, c in changes.items() if c.new is not c.state]
        states = [store.record(changes[i].new, changes[i].revision) for i in saving]
        saved = await writer.store(
            states, lambda k: store.save(changes[saving[k]].new, changes[saving[k]].revision)
        )
        for index, exc in zip(saving, saved.errors, strict=True):
            drop(index, exc)

        announced = list(changes)
        result = await event_writer.store_events([armed(changes[i].new) for i in announced])
        for index, exc in zip(announced, result.errors, strict=True):
            drop(index, exc)

        for change in changes.values():
            if change.state is None:
                metrics.armed.labels(change.new.tenant, change.new.priority).inc()
            for target in clocks.met(change.state, change.new):
                metrics.clocks.labels(change.new.tenant, change.new.priority, target, "met").inc()
        for index, exc in failed.items():
            await settle_failed(
                broker, SERVICE, messages[index], exc, max_deliver=settings.max_deliver
            )

    tickets = prompt(
        broker.subscriber(
            subjects.event_pattern(TicketReceived).replace(".received", ".*"),
            title="ticket.*:clocks",
            description="Arms the clocks of classified tickets and stops, pauses, resumes or "
            "re-arms them on updates (a fetched batch at a time).",
            # received and assigned change no clock: only classified and updated are delivered
            # (a consumer created by an older version still gets them all, and skips them)
            **durable_consumer(
                settings,
                "sla-timer-tickets",
                batch=True,
                filter_subjects=[
                    subjects.event_pattern(TicketClassified),
                    subjects.event_pattern(TicketUpdated),
                ],
            ),
        ),
        payload=TicketEvent,
    )

    @tickets
    async def on_ticket(batch: NatsBatch) -> None:
        """Arm the clocks of classified tickets; stop, pause, resume or re-arm them on updates."""
        await apply(batch.raw_message)

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
