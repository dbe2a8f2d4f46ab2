"""Routing subscribers: a classified ticket gets an engineer; updates keep the load current.

The rules are in ``routing`` (pure); this module reads their inputs (the team, the load
projection in KV, the ticket's history in the stream), writes the load and publishes
``TicketAssigned``. Effectively once:

- an assignment's event id is derived from the classification it answers, and the decision is
  stored in the assignee's load before it is published, so a redelivery after a crash publishes
  the same decision again (deduplicated) instead of deciding anew;
- every other change of the load is "make the projection agree with the ticket's history"
  (``routing.plan_load``), so a redelivered or late update changes nothing;
- the shift-end check runs on every replica; its event ids are derived from the ticket, the
  engineer and when they got it, so two replicas publish one reassignment.
"""

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from opora_classifier import routing
from opora_classifier.adapters.load_kv import LoadStore
from opora_classifier.routing import LoadPlan, OpenTicket, TicketFacts
from opora_classifier.settings import ClassifierSettings
from opora_shared import subjects
from opora_shared.contract_store import ContractStore
from opora_shared.events import TicketAssigned, TicketClassified, TicketUpdated, decode
from opora_shared.nats.broker import EVENTS, jetstream
from opora_shared.nats.history import stream_seq, ticket_events
from opora_shared.nats.publish import Publisher, publish_event
from opora_shared.nats.stage import each_message
from opora_shared.team import Team
from opora_shared.vocabulary import TicketChange

log = logging.getLogger(__name__)

SERVICE = "classifier"
"""The service routing runs in: its dead letters go to ``opora.dlq.classifier``."""
ROUTER = "router"
"""Durable consumer of TicketClassified (assignment)."""
ROUTER_UPDATES = "router-updates"
"""Durable consumer of TicketUpdated (resolution, reopening, priority)."""
ROUTER_ASSIGNMENTS = "router-assignments"
"""Durable consumer of TicketAssigned (manual reassignments, e.g. ``#assign`` by mail)."""

LOAD_CHANGES = (TicketChange.RESOLVED, TicketChange.REOPENED, TicketChange.PRIORITY_CHANGED)


class Router:
    """Routing's I/O around the pure rules; one per app, shared by its handlers and tasks."""

    def __init__(
        self,
        broker: NatsBroker,
        publisher: Publisher,
        *,
        contracts: ContractStore,
        clock: Callable[[], datetime],
    ) -> None:
        self._broker = broker
        self._publisher = publisher
        self._contracts = contracts
        self._clock = clock
        self._store: LoadStore | None = None
        self._deciding = asyncio.Lock()

    @property
    def loads(self) -> LoadStore:
        """The load projection (bound on first use, once the broker is connected)."""
        if self._store is None:
            self._store = LoadStore(jetstream(self._broker))
        return self._store

    async def route(
        self, event: TicketClassified, seen: int | None = None
    ) -> TicketAssigned | None:
        """Assign a newly classified ticket; None when it already has an assignee or is closed.

        ``seen``: the event's stream sequence (its history is then taken from the tap).
        """
        team = self._contracts.team
        facts = await self._facts(event.tenant, event.ticket_id, seen)
        if facts.assignment is not None or not facts.open:
            await self._reconcile(team, facts)
            return None
        # FastStream handles a fetched batch concurrently: one decision at a time, each seeing
        # the loads the previous one stored, or a burst would all go to the same engineer.
        async with self._deciding:
            assigned, loads = await self._decide(team, event, facts)
        await publish_event(self._publisher, assigned)
        log.info(
            "ticket %s assigned to %s by rule %s", event.ticket_id, assigned.assignee, assigned.rule
        )
        await self._apply(event.ticket_id, routing.plan_load(_with(facts, assigned), loads))
        return assigned

    async def _decide(
        self, team: Team, event: TicketClassified, facts: TicketFacts
    ) -> tuple[TicketAssigned, dict[str, routing.EngineerLoad]]:
        """Decide (or recover an earlier attempt's decision) and store it in the assignee's load."""
        loads = await self.loads.get_many(e.id for e in team.engineers)
        event_id = routing.assignment_id(event)
        assigned = self._recover(team, event, event_id, loads)
        if assigned is None:
            now = self._clock()
            priority = facts.priority or event.priority
            decision = routing.assign(
                team, category=event.category, priority=priority, now=now, loads=loads
            )
            assigned = TicketAssigned(
                event_id=event_id,
                occurred_at=now,
                tenant=event.tenant,
                ticket_id=event.ticket_id,
                assignee=decision.engineer.id,
                assignee_email=decision.engineer.email,
                team=decision.team,
                priority=priority,
                rule=decision.rule,
                reasons=decision.reasons,
            )
        entry = _entry(assigned)
        at = assigned.occurred_at
        # Stored before it is published: a crash in between is recovered by _recover.
        loads[assigned.assignee] = await self.loads.change(
            assigned.assignee,
            lambda load: (
                load
                if event.ticket_id in load.open
                else load.with_ticket(event.ticket_id, entry, assigned=at)
            ),
        )
        return assigned, loads

    async def track(self, event: TicketUpdated) -> None:
        """Follow a resolution, a reopening or a priority change into the load projection."""
        if event.change not in LOAD_CHANGES:
            return
        facts = await self._facts(event.tenant, event.ticket_id)
        await self._reconcile(self._contracts.team, facts)

    async def follow(self, event: TicketAssigned) -> None:
        """Follow an assignment made by a person into the load projection."""
        if event.rule != "manual":
            return  # routing's own: already in the projection
        facts = await self._facts(event.tenant, event.ticket_id)
        await self._reconcile(self._contracts.team, facts)

    async def check_shifts(self) -> list[TicketAssigned]:
        """Move open P1/P2 tickets of engineers off shift to the on-duty engineer."""
        team = self._contracts.team
        now = self._clock()
        known = await self.loads.engineer_ids()  # also those gone from the team file
        loads = await self.loads.get_many([*(e.id for e in team.engineers), *known])
        moved = []
        for move in routing.shift_end_reassignments(team, loads, now):
            facts = await self._facts(move.tenant, move.ticket_id)
            priority = facts.priority or move.priority
            if facts.holder == move.previous and priority in routing.MOVED_AT_SHIFT_END:
                duty = move.assignment.engineer
                assigned = TicketAssigned(
                    event_id=move.event_id,
                    occurred_at=now,
                    tenant=move.tenant,
                    ticket_id=move.ticket_id,
                    assignee=duty.id,
                    assignee_email=duty.email,
                    team=move.assignment.team,
                    priority=priority,
                    rule=move.assignment.rule,
                    previous_assignee=move.previous,
                    reasons=move.assignment.reasons,
                )
                ack = await publish_event(self._publisher, assigned)
                if not ack.duplicate:
                    log.info(
                        "ticket %s moved from %s to %s at shift end",
                        move.ticket_id,
                        move.previous,
                        duty.id,
                    )
                moved.append(assigned)
                facts = _with(facts, assigned)
            await self._reconcile(team, facts)
        return moved

    async def run_shift_checks(self, interval_s: float) -> None:
        """Check shifts now and every ``interval_s`` seconds until cancelled."""
        while True:
            try:
                await self.check_shifts()
            except Exception as exc:  # a NATS hiccup or a missing team: try again next time
                log.warning("shift-end check failed (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(interval_s)

    async def _facts(self, tenant: str, ticket_id: str, seen: int | None = None) -> TicketFacts:
        events = await ticket_events(jetstream(self._broker), ticket_id, tenant=tenant, seen=seen)
        return routing.ticket_facts(tenant, ticket_id, events)

    async def _reconcile(self, team: Team, facts: TicketFacts) -> None:
        """Make the load projection agree with the ticket's history."""
        # the engineers the history names too, in case the team file no longer does
        extra: list[str] = []
        if facts.assignment is not None:
            extra = [facts.assignment.assignee, facts.assignment.previous_assignee or ""]
        loads = await self.loads.get_many([*(e.id for e in team.engineers), *extra])
        await self._apply(facts.ticket_id, routing.plan_load(facts, loads))

    async def _apply(self, ticket_id: str, plan: LoadPlan) -> None:
        for engineer_id in plan.remove_from:
            await self.loads.change(engineer_id, lambda load: load.without_ticket(ticket_id))
        if plan.put is not None:
            holder, entry = plan.put
            await self.loads.change(holder, lambda load: load.with_ticket(ticket_id, entry))

    @staticmethod
    def _recover(
        team: Team,
        event: TicketClassified,
        event_id: uuid.UUID,
        loads: dict[str, routing.EngineerLoad],
    ) -> TicketAssigned | None:
        """The decision a previous attempt stored and did not publish, if any."""
        for engineer_id, load in loads.items():
            entry = load.open.get(event.ticket_id)
            engineer = team.engineer(engineer_id)
            if entry is None or entry.event_id != event_id or engineer is None:
                continue
            return TicketAssigned(
                event_id=entry.event_id,
                occurred_at=entry.assigned_at,
                tenant=event.tenant,
                ticket_id=event.ticket_id,
                assignee=engineer.id,
                assignee_email=engineer.email,
                team=entry.team,
                priority=entry.priority,
                rule=entry.rule or "manual",
                reasons=entry.reasons,
            )
        return None


def _entry(assigned: TicketAssigned) -> OpenTicket:
    return OpenTicket(
        tenant=assigned.tenant,
        priority=assigned.priority,
        assigned_at=assigned.occurred_at,
        event_id=assigned.event_id,
        rule=assigned.rule,
        team=assigned.team,
        reasons=assigned.reasons,
    )


def _with(facts: TicketFacts, assigned: TicketAssigned) -> TicketFacts:
    return dataclasses.replace(
        facts, assignment=assigned, assignment_ids=facts.assignment_ids | {assigned.event_id}
    )


def register(
    broker: NatsBroker,
    settings: ClassifierSettings,
    *,
    contracts: ContractStore,
    clock: Callable[[], datetime],
) -> Router:
    """Attach routing's subscribers and publisher to a broker; the Router for its tasks."""
    assigned = broker.publisher(
        subjects.event_template(TicketAssigned),
        stream=EVENTS,
        schema=TicketAssigned,
        title="ticket.assigned",
        description="Who works the ticket now, by which routing rule, and why.",
    )
    router = Router(broker, assigned, contracts=contracts, clock=clock)

    async def route(raw: Msg) -> None:
        """Assign a classified ticket: skill, shift, least load; on-duty for P1 and out of hours."""
        await router.route(decode(TicketClassified, raw.data), stream_seq(raw))

    async def track(raw: Msg) -> None:
        """Keep engineers' open-ticket load current: resolved, reopened, priority changed."""
        await router.track(decode(TicketUpdated, raw.data))

    async def follow(raw: Msg) -> None:
        """Move a ticket assigned by hand between engineers' loads."""
        await router.follow(decode(TicketAssigned, raw.data))

    for handle, payload, durable, title in (
        (route, TicketClassified, ROUTER, "ticket.classified:route"),
        (track, TicketUpdated, ROUTER_UPDATES, "ticket.updated:load"),
        (follow, TicketAssigned, ROUTER_ASSIGNMENTS, "ticket.assigned:load"),
    ):
        each_message(
            broker,
            settings,
            handle,
            subject=subjects.event_pattern(payload),
            durable=durable,
            service=SERVICE,
            payload=payload,
            title=title,
            description=str(handle.__doc__),
        )

    return router
