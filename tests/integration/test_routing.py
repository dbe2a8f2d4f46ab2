"""Routing on a real nats-server: who gets a ticket, the load in KV, redelivery, shift end.

The classifier runs in this process with a clock the test moves. Tickets are published as
TicketClassified (the router's input) under a fresh tenant. The router's durable consumers are
shared by the session, so the fixture first lets them catch up with earlier tests' tickets,
then clears the brief's engineers' loads: every count below starts at zero.
"""

import asyncio
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from opora_classifier.adapters.load_kv import LoadStore
from opora_classifier.app import create_app
from opora_classifier.routing import EngineerLoad, OpenTicket, assignment_id
from opora_classifier.routing_handlers import ROUTER, ROUTER_ASSIGNMENTS, ROUTER_UPDATES
from opora_classifier.settings import ClassifierSettings
from opora_shared import subjects
from opora_shared.events import Actor, TicketAssigned, TicketUpdated
from opora_shared.nats.history import last_event, ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.testing.factories import make_ticket_classified
from opora_shared.testing.waiting import wait_for
from opora_shared.vocabulary import Category, Priority, TicketChange

MSK = ZoneInfo("Europe/Moscow")
WEDNESDAY_NOON = datetime(2026, 11, 25, 12, 0, tzinfo=MSK)
FRIDAY_AFTERNOON = datetime(2026, 11, 27, 17, 0, tzinfo=MSK)
FRIDAY_AFTER_SHIFT = datetime(2026, 11, 27, 18, 5, tzinfo=MSK)
ENGINEERS = ("maria", "alexey", "oleg", "duty")


class Clock:
    """A clock the test sets."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def caught_up(js, durable: str, seq: int = 0) -> bool:
    """True when the consumer has delivered up to ``seq`` and has nothing pending or unacked."""
    info = await js.consumer_info(subjects.EVENTS_STREAM, durable)
    return (
        info.num_pending == 0
        and info.num_ack_pending == 0
        and (info.delivered.stream_seq or 0) >= seq
    )


@pytest.fixture
async def classifier(nats_url, js):
    """Start classifier replicas on one clock; the first call clears the engineers' loads."""
    apps = []
    store = LoadStore(js)

    async def start(clock: Clock, *, interval_s: float = 0.1):
        app = create_app(
            ClassifierSettings(nats_url=nats_url, shift_check_interval_s=interval_s),
            clock=clock,
            registry=CollectorRegistry(),
        )
        await app.start()
        apps.append(app)
        if len(apps) == 1:
            for durable in (ROUTER, ROUTER_UPDATES, ROUTER_ASSIGNMENTS):
                await wait_for(
                    lambda d=durable: caught_up(js, d), timeout=30, message=f"{durable} caught up"
                )
            for engineer in ENGINEERS:
                await store.delete(engineer)
        return app

    yield start, store
    for app in apps:
        await app.stop()


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def classified(tenant: str, clock: Clock, category=Category.PRINTING, priority=Priority.P3):
    return make_ticket_classified(
        tenant=tenant, category=category, priority=priority, occurred_at=clock.now
    )


def updated(ticket, change: TicketChange, clock: Clock) -> TicketUpdated:
    return TicketUpdated(
        event_id=uuid.uuid4(),
        occurred_at=clock.now,
        tenant=ticket.tenant,
        ticket_id=ticket.ticket_id,
        change=change,
        actor=Actor(kind="engineer", id="maria@opora.local"),
    )


async def assigned_to(js, ticket) -> TicketAssigned:
    return await wait_for(
        lambda: last_event(js, TicketAssigned, ticket.tenant, ticket.ticket_id),
        timeout=10,
        message=f"ticket {ticket.ticket_id} assigned",
    )


async def assignments(js, ticket) -> list[TicketAssigned]:
    events = await ticket_events(js, ticket.ticket_id, tenant=ticket.tenant)
    return [e for e in events if isinstance(e, TicketAssigned)]


async def counts(store: LoadStore) -> dict[str, int]:
    loads = await store.get_many(ENGINEERS)
    return {engineer: load.count for engineer, load in loads.items()}


async def redeliver(app, event) -> int:
    """Publish an event's exact body again under another Nats-Msg-Id: what a redelivery is."""
    ack = await app.broker.publish(
        event,
        subjects.event_subject(event),
        headers={"Nats-Msg-Id": f"again-{uuid.uuid4()}"},
        stream=subjects.EVENTS_STREAM,
    )
    return int(ack.seq)


class TestAssignment:
    async def test_a_classified_ticket_goes_to_the_engineer_on_shift_with_the_skill(
        self, classifier, js, tenant
    ):
        start, store = classifier
        clock = Clock(WEDNESDAY_NOON)
        app = await start(clock)
        printer = classified(tenant, clock, Category.PRINTING)
        await publish_event(app.broker, printer)
        event = await assigned_to(js, printer)
        assert (event.assignee, event.assignee_email) == ("maria", "maria@opora.local")
        assert (event.rule, event.team, event.priority) == (
            "skill_least_load",
            "service-desk",
            Priority.P3,
        )
        assert event.reasons == (
            "printing → service-desk",
            "maria on shift, 0 open, the only one with the skill on shift",
        )
        outage = classified(tenant, clock, Category.NETWORK, Priority.P1)
        await publish_event(app.broker, outage)
        event = await assigned_to(js, outage)
        assert (event.assignee, event.rule, event.team) == ("duty", "on_duty_p1", "infrastructure")
        assert await counts(store) == {"maria": 1, "alexey": 0, "oleg": 0, "duty": 1}
        load = await store.get("maria")
        assert load.open[printer.ticket_id].tenant == tenant
        assert load.last_assigned_at == WEDNESDAY_NOON

    async def test_the_load_goes_down_on_resolution_and_back_up_on_reopening(
        self, classifier, js, tenant
    ):
        start, store = classifier
        clock = Clock(WEDNESDAY_NOON)
        app = await start(clock)
        ticket = classified(tenant, clock, Category.ACCOUNTING_SOFTWARE)
        await publish_event(app.broker, ticket)
        assert (await assigned_to(js, ticket)).assignee == "oleg"
        assert (await counts(store))["oleg"] == 1  # stored before TicketAssigned is published

        async def oleg_carries(n: int) -> bool:
            return (await store.get("oleg")).count == n

        await publish_event(app.broker, updated(ticket, TicketChange.RESOLVED, clock))
        await wait_for(lambda: oleg_carries(0), message="load down after resolution")
        await publish_event(app.broker, updated(ticket, TicketChange.REOPENED, clock))
        await wait_for(lambda: oleg_carries(1), message="load back after reopening")
        await publish_event(app.broker, updated(ticket, TicketChange.RESOLVED, clock))
        await wait_for(lambda: oleg_carries(0), message="load down again")
        assert await counts(store) == dict.fromkeys(ENGINEERS, 0)

    async def test_a_burst_is_decided_one_at_a_time_each_seeing_the_last_load(
        self, classifier, js, tenant
    ):
        start, _ = classifier
        clock = Clock(WEDNESDAY_NOON)
        app = await start(clock)
        burst = [classified(tenant, clock, Category.NETWORK, Priority.P1) for _ in range(5)]
        await asyncio.gather(*(publish_event(app.broker, ticket) for ticket in burst))
        events = [await assigned_to(js, ticket) for ticket in burst]
        seen = sorted(e.reasons[1] for e in events)
        assert seen == [
            f"P1: duty, the on-duty engineer, takes every P1 ({n} open)" for n in range(5)
        ]

    async def test_a_ticket_handed_over_by_hand_moves_between_loads(self, classifier, js, tenant):
        start, store = classifier
        clock = Clock(WEDNESDAY_NOON)
        app = await start(clock)
        ticket = classified(tenant, clock, Category.PRINTING, Priority.P2)
        await publish_event(app.broker, ticket)
        first = await assigned_to(js, ticket)
        by_hand = first.model_copy(
            update={
                "event_id": uuid.uuid4(),
                "assignee": "alexey",
                "assignee_email": "alexey@opora.local",
                "rule": "manual",
                "previous_assignee": "maria",
                "reasons": ("assigned to alexey by maria",),
            }
        )
        await publish_event(app.broker, by_hand)

        async def moved() -> bool:
            return await counts(store) == {"maria": 0, "alexey": 1, "oleg": 0, "duty": 0}

        await wait_for(moved, message="the load follows #assign")
        assert (await store.get("alexey")).open[ticket.ticket_id].rule == "manual"


class TestRedelivery:
    async def test_a_redelivered_classification_neither_reassigns_nor_counts_twice(
        self, classifier, js, tenant
    ):
        start, store = classifier
        clock = Clock(WEDNESDAY_NOON)
        app = await start(clock)
        ticket = classified(tenant, clock, Category.EMAIL)
        await publish_event(app.broker, ticket)
        first = await assigned_to(js, ticket)
        clock.now = FRIDAY_AFTER_SHIFT  # a second decision would now go to duty
        seq = await redeliver(app, ticket)
        await wait_for(lambda: caught_up(js, ROUTER, seq), message="redelivery processed")
        assert [a.event_id for a in await assignments(js, ticket)] == [first.event_id]
        assert await counts(store) == {"maria": 1, "alexey": 0, "oleg": 0, "duty": 0}

    async def test_a_redelivered_resolution_does_not_count_twice(self, classifier, js, tenant):
        start, store = classifier
        clock = Clock(WEDNESDAY_NOON)
        app = await start(clock)
        one, two = (classified(tenant, clock, Category.PRINTING) for _ in range(2))
        for ticket in (one, two):
            await publish_event(app.broker, ticket)
            await assigned_to(js, ticket)
        assert (await counts(store))["maria"] == 2
        resolved = updated(one, TicketChange.RESOLVED, clock)
        await publish_event(app.broker, resolved)
        seq = await redeliver(app, resolved)
        await wait_for(lambda: caught_up(js, ROUTER_UPDATES, seq), message="resolution twice")
        load = await store.get("maria")
        assert list(load.open) == [two.ticket_id]

    async def test_a_decision_stored_but_not_published_is_published_as_it_was(
        self, classifier, js, tenant
    ):
        """A crash between the load update and the publish: the redelivery keeps the decision."""
        start, store = classifier
        clock = Clock(WEDNESDAY_NOON)
        ticket = classified(tenant, clock, Category.PRINTING)
        earlier = datetime(2026, 11, 25, 8, 30, tzinfo=MSK)
        entry = OpenTicket(
            tenant=tenant,
            priority=Priority.P3,
            assigned_at=earlier,
            event_id=assignment_id(ticket),
            rule="on_duty_out_of_hours",
            team="service-desk",
            reasons=("decided before the crash",),
        )
        app = await start(clock)
        await store.change("duty", lambda _: EngineerLoad().with_ticket(ticket.ticket_id, entry))
        await publish_event(app.broker, ticket)
        event = await assigned_to(js, ticket)
        assert (event.event_id, event.assignee, event.rule) == (
            assignment_id(ticket),
            "duty",
            "on_duty_out_of_hours",
        )
        assert event.reasons == ("decided before the crash",)
        assert event.occurred_at == earlier
        assert await counts(store) == {"maria": 0, "alexey": 0, "oleg": 0, "duty": 1}


class TestShiftEnd:
    async def test_an_open_p2_moves_to_duty_when_the_shift_ends_once_across_replicas(
        self, classifier, js, tenant
    ):
        start, store = classifier
        clock = Clock(FRIDAY_AFTERNOON)
        app = await start(clock)
        await start(clock)  # a second replica: same durable consumers, its own shift checks
        urgent = classified(tenant, clock, Category.PRINTING, Priority.P2)
        normal = classified(tenant, clock, Category.PRINTING, Priority.P3)
        for ticket in (urgent, normal):
            await publish_event(app.broker, ticket)
            assert (await assigned_to(js, ticket)).assignee == "maria"

        clock.now = FRIDAY_AFTER_SHIFT
        moved = await wait_for(
            lambda: _shift_end(js, urgent), timeout=10, message="the P2 moved at shift end"
        )
        assert (moved.assignee, moved.previous_assignee, moved.priority) == (
            "duty",
            "maria",
            Priority.P2,
        )
        assert moved.reasons[0] == "maria's shift is over (back Mon 30 Nov 09:00 MSK)"

        async def settled() -> bool:
            loads = await store.get_many(("maria", "duty"))
            return list(loads["maria"].open) == [normal.ticket_id] and list(loads["duty"].open) == [
                urgent.ticket_id
            ]

        await wait_for(settled, message="loads moved: the P2 to duty, the P3 stays")
        assert [a.rule for a in await assignments(js, urgent)] == ["skill_least_load", "shift_end"]
        assert [a.rule for a in await assignments(js, normal)] == ["skill_least_load"]

    async def test_an_engineer_dropped_from_the_team_file_hands_over_at_once(
        self, classifier, js, tenant
    ):
        start, store = classifier
        clock = Clock(WEDNESDAY_NOON)
        app = await start(clock)
        ticket = classified(tenant, clock, Category.PRINTING, Priority.P2)
        await publish_event(app.broker, ticket)
        first = await assigned_to(js, ticket)
        to_ivan = first.model_copy(
            update={
                "event_id": uuid.uuid4(),
                "assignee": "ivan",
                "assignee_email": "ivan@opora.local",
                "rule": "manual",
                "previous_assignee": "maria",
            }
        )
        await publish_event(app.broker, to_ivan)
        try:
            moved = await wait_for(lambda: _shift_end(js, ticket), message="ivan's P2 moved")
            assert (moved.assignee, moved.previous_assignee) == ("duty", "ivan")
            assert moved.reasons[0] == "ivan is no longer in the team file"

            async def settled() -> bool:
                return (await store.get("ivan")).count == 0 and (await counts(store)) == {
                    "maria": 0,
                    "alexey": 0,
                    "oleg": 0,
                    "duty": 1,
                }

            await wait_for(settled, message="ivan's load handed to duty")
        finally:
            await store.delete("ivan")


async def _shift_end(js, ticket) -> TicketAssigned | None:
    event = await last_event(js, TicketAssigned, ticket.tenant, ticket.ticket_id)
    return event if event is not None and event.rule == "shift_end" else None
