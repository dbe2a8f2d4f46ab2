"""SLA timers on a real nats-server with second-long targets: on time, once, pause and stop."""

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from opora_shared import subjects
from opora_shared.events import (
    Actor,
    SlaArmed,
    SlaBreached,
    SlaWarning,
    TicketClassified,
    TicketEscalated,
    TicketUpdated,
    parse_event,
)
from opora_shared.nats.publish import publish_event
from opora_shared.testing.contracts import write_fast_contracts
from opora_shared.testing.factories import make_ticket_classified
from opora_shared.testing.waiting import wait_for
from opora_shared.vocabulary import (
    Priority,
    SlaTarget,
    TicketChange,
)
from opora_sla_timer.app import create_app
from opora_sla_timer.clocks import SlaState
from opora_sla_timer.settings import SlaTimerSettings


class Collector:
    """Every SLA event of this test's tenant, with its arrival time."""

    def __init__(self) -> None:
        self.events: list[tuple[float, object]] = []

    async def start(self, nc, tenant: str) -> None:
        async def handler(msg):
            self.events.append((datetime.now(UTC).timestamp(), parse_event(msg.data)))

        self.sub = await nc.subscribe(f"{subjects.EVENTS_PREFIX}.{tenant}.sla.>", cb=handler)

    def of(self, ticket_id: str, cls):
        return [(t, e) for t, e in self.events if isinstance(e, cls) and e.ticket_id == ticket_id]


@pytest.fixture
async def sla(nats_url, tmp_path, nc):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    contracts = write_fast_contracts(tmp_path / "contracts", tenant)
    registry = CollectorRegistry()
    app = create_app(
        SlaTimerSettings(nats_url=nats_url, contracts_dir=contracts), registry=registry
    )
    app.test_registry = registry
    collector = Collector()
    await collector.start(nc, tenant)
    await app.start()
    yield app, tenant, collector
    await app.stop()


def classified(tenant: str, priority=Priority.P3, received_at=None) -> TicketClassified:
    now = received_at or datetime.now(UTC)
    return make_ticket_classified(tenant=tenant, priority=priority, occurred_at=now)


def updated(event, change: TicketChange, **extra) -> TicketUpdated:
    return TicketUpdated(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        tenant=event.tenant,
        ticket_id=event.ticket_id,
        change=change,
        actor=Actor(kind="engineer", id="maria@opora.local"),
        **extra,
    )


class TestTimers:
    async def test_warning_breach_and_escalation_each_arrive_once_and_on_time(self, sla):
        app, tenant, seen = sla
        ticket = classified(tenant, Priority.P2)  # first response 3 s, resolution 6 s
        await publish_event(app.broker, ticket)
        await wait_for(
            lambda: len(seen.of(ticket.ticket_id, TicketEscalated)) >= 2,
            timeout=20,
            message="both escalations",
        )
        await asyncio.sleep(1.5)  # nothing more may come: let any duplicate show itself
        kinds = Counter(
            (type(e).__name__, e.target)
            for _, e in seen.events
            if e.ticket_id == ticket.ticket_id and not isinstance(e, SlaArmed)
        )
        assert kinds == {
            ("SlaWarning", SlaTarget.FIRST_RESPONSE): 1,
            ("SlaBreached", SlaTarget.FIRST_RESPONSE): 1,
            ("SlaWarning", SlaTarget.RESOLUTION): 1,
            ("SlaBreached", SlaTarget.RESOLUTION): 1,
            ("TicketEscalated", SlaTarget.FIRST_RESPONSE): 1,
            ("TicketEscalated", SlaTarget.RESOLUTION): 1,
        }
        start = ticket.received_at.timestamp()
        for cls, target, after in (
            (SlaWarning, SlaTarget.FIRST_RESPONSE, 2.4),
            (SlaBreached, SlaTarget.FIRST_RESPONSE, 3.0),
            (SlaWarning, SlaTarget.RESOLUTION, 4.8),
            (SlaBreached, SlaTarget.RESOLUTION, 6.0),
        ):
            ((at, _event),) = [
                (t, e) for t, e in seen.of(ticket.ticket_id, cls) if e.target == target
            ]
            lateness = at - (start + after)
            assert -0.05 <= lateness < 1.0, (cls.__name__, target, lateness)
        levels = {e.target: e.level for _, e in seen.of(ticket.ticket_id, TicketEscalated)}
        assert levels == {SlaTarget.FIRST_RESPONSE: 2, SlaTarget.RESOLUTION: 3}

    async def test_acknowledged_in_time_stops_the_first_response_clock(self, sla):
        app, tenant, seen = sla
        ticket = classified(tenant, Priority.P3)  # first response 4.2 s, warning 3.36 s
        await publish_event(app.broker, ticket)
        await wait_for(lambda: seen.of(ticket.ticket_id, SlaArmed), timeout=5)
        await publish_event(app.broker, updated(ticket, TicketChange.ACKNOWLEDGED))
        await wait_for(lambda: len(seen.of(ticket.ticket_id, SlaArmed)) >= 2, timeout=5)
        await wait_for(
            lambda: seen.of(ticket.ticket_id, SlaBreached),
            timeout=20,
            message="the resolution breach",
        )
        targets = {e.target for _, e in seen.of(ticket.ticket_id, SlaBreached)}
        assert targets == {SlaTarget.RESOLUTION}
        decided = {
            (target, outcome): app.test_registry.get_sample_value(
                "opora_sla_clocks_total",
                {"tenant": tenant, "priority": "P3", "target": target, "outcome": outcome},
            )
            for target in ("first_response", "resolution")
            for outcome in ("met", "breached")
        }
        assert decided == {
            ("first_response", "met"): 1.0,
            ("first_response", "breached"): None,
            ("resolution", "met"): None,
            ("resolution", "breached"): 1.0,
        }
        assert not [
            e
            for _, e in seen.of(ticket.ticket_id, SlaWarning)
            if e.target is SlaTarget.FIRST_RESPONSE
        ]

    async def test_waiting_on_client_pauses_and_moves_the_resolution_deadline(self, sla):
        app, tenant, seen = sla
        ticket = classified(tenant, Priority.P4)  # resolution 10.8 s
        await publish_event(app.broker, ticket)
        ((_, armed),) = await wait_for(lambda: seen.of(ticket.ticket_id, SlaArmed), timeout=5)
        await publish_event(app.broker, updated(ticket, TicketChange.ACKNOWLEDGED))
        await publish_event(app.broker, updated(ticket, TicketChange.WAITING_ON_CLIENT))
        await asyncio.sleep(2.0)  # the pause being measured, not a synchronisation
        await publish_event(app.broker, updated(ticket, TicketChange.CLIENT_REPLIED))

        def moved():
            latest = [e for _, e in seen.of(ticket.ticket_id, SlaArmed)]
            return latest[-1] if latest[-1].resolution_due > armed.resolution_due else None

        latest = await wait_for(moved, timeout=5, message="a later deadline")
        shift = (latest.resolution_due - armed.resolution_due).total_seconds()
        assert 1.9 <= shift <= 3.0
        ((at, breach),) = await wait_for(lambda: seen.of(ticket.ticket_id, SlaBreached), timeout=20)
        assert breach.due_at == latest.resolution_due
        assert at >= latest.resolution_due.timestamp() - 0.05

    async def test_resolved_stops_everything(self, sla):
        app, tenant, seen = sla
        ticket = classified(tenant, Priority.P1)  # first response 1.8 s
        await publish_event(app.broker, ticket)
        await wait_for(lambda: seen.of(ticket.ticket_id, SlaArmed), timeout=5)
        await publish_event(app.broker, updated(ticket, TicketChange.RESOLVED))
        await wait_for(lambda: len(seen.of(ticket.ticket_id, SlaArmed)) >= 2, timeout=5)
        await asyncio.sleep(4.5)  # past every deadline of the P1 clocks
        assert [
            type(e).__name__
            for _, e in seen.events
            if e.ticket_id == ticket.ticket_id and not isinstance(e, SlaArmed)
        ] == []

    async def test_only_classified_and_updated_events_are_delivered_to_the_clocks(self, sla, js):
        info = await js.consumer_info(subjects.EVENTS_STREAM, "sla-timer-tickets")
        assert sorted(info.config.filter_subjects or []) == sorted(
            [
                subjects.event_pattern(TicketClassified),
                subjects.event_pattern(TicketUpdated),
            ]
        )

    async def test_a_burst_is_armed_once_each_with_its_state_stored(self, sla, js):
        app, tenant, seen = sla
        tickets = [classified(tenant, Priority.P3) for _ in range(12)]
        await asyncio.gather(*(publish_event(app.broker, t) for t in tickets))

        def armed():
            found = Counter(e.ticket_id for _, e in seen.events if isinstance(e, SlaArmed))
            return found if len(found) == len(tickets) else None

        found = await wait_for(armed, timeout=10, message="every ticket armed")
        assert set(found.values()) == {1}
        states = await js.key_value(subjects.SLA_BUCKET)
        for ticket in tickets:
            state = SlaState.model_validate_json((await states.get(ticket.ticket_id)).value)
            assert (state.ticket_id, state.priority) == (ticket.ticket_id, Priority.P3)

    async def test_a_deadline_already_past_fires_at_once_marked_late(self, sla):
        app, tenant, seen = sla
        ticket = classified(
            tenant, Priority.P1, received_at=datetime.now(UTC) - timedelta(seconds=30)
        )
        await publish_event(app.broker, ticket)
        ((_, breach),) = await wait_for(
            lambda: [
                x
                for x in seen.of(ticket.ticket_id, SlaBreached)
                if x[1].target is SlaTarget.RESOLUTION
            ],
            timeout=5,
        )
        assert breach.late_by_s > 20


class TestExplain:
    async def test_opora_sla_explain_shows_clocks_pauses_and_events(
        self, sla, nats_url, monkeypatch, capsys
    ):
        from opora_shared.cli import main

        app, tenant, seen = sla
        ticket = classified(tenant, Priority.P4)
        await publish_event(app.broker, ticket)
        await wait_for(lambda: seen.of(ticket.ticket_id, SlaArmed), timeout=5)
        await publish_event(app.broker, updated(ticket, TicketChange.WAITING_ON_CLIENT))
        await wait_for(lambda: len(seen.of(ticket.ticket_id, SlaArmed)) >= 2, timeout=5)
        monkeypatch.setenv("OPORA_NATS_URL", nats_url)
        assert await asyncio.to_thread(main, ["sla", "explain", ticket.ticket_id]) == 0
        import json

        report = json.loads(capsys.readouterr().out)
        assert report["clocks"]["clocks"]["resolution"]["paused_since"] is not None
        assert [e["type"] for e in report["events"]][:2] == ["sla.armed", "ticket.updated"]
