from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opora_shared.contracts import ContractBook
from opora_shared.vocabulary import Priority, SlaTarget, TicketChange
from opora_sla_timer import clocks
from opora_sla_timer.clocks import TimerKind
from opora_sla_timer.deadlines import calendar_of

CONTRACTS = Path(__file__).resolve().parents[3] / "deploy" / "contracts"
T0 = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # Wednesday 10:00 in Moscow


@pytest.fixture(scope="module")
def romashka():
    return ContractBook.from_dir(CONTRACTS).get("romashka")


def armed(contract, priority=Priority.P3):
    return clocks.arm(
        contract, ticket_id="7", priority=priority, received_at=T0, timeline=calendar_of(contract)
    )


def apply(state, contract, change, at, **kw):
    return clocks.apply(state, change, at, contract=contract, timeline=calendar_of(contract), **kw)


class TestArm:
    def test_p3_clocks_warn_at_80_percent_of_business_time(self, romashka):
        state = armed(romashka)
        first = state.clocks[SlaTarget.FIRST_RESPONSE]
        assert first.due == T0 + timedelta(hours=2)
        assert first.warn_due == T0 + timedelta(minutes=96)
        assert {(t.target, t.kind) for t in clocks.timers(state)} == {
            (target, kind) for target in SlaTarget for kind in TimerKind
        }


class TestUpdates:
    def test_acknowledged_stops_first_response_only(self, romashka):
        state = apply(
            armed(romashka), romashka, TicketChange.ACKNOWLEDGED, T0 + timedelta(minutes=5)
        )
        assert {t.target for t in clocks.timers(state)} == {SlaTarget.RESOLUTION}

    def test_pause_and_resume_move_the_resolution_deadline_by_business_time(self, romashka):
        state = armed(romashka)
        due = state.clocks[SlaTarget.RESOLUTION].due
        paused = apply(state, romashka, TicketChange.WAITING_ON_CLIENT, T0 + timedelta(hours=1))
        assert SlaTarget.RESOLUTION not in {t.target for t in clocks.timers(paused)}
        # resumed next morning at 10:00 Moscow: 8 business hours paused (11-18, 09-10)
        resumed = apply(paused, romashka, TicketChange.CLIENT_REPLIED, T0 + timedelta(days=1))
        assert resumed.clocks[SlaTarget.RESOLUTION].paused_s == 8 * 3600
        assert resumed.clocks[SlaTarget.RESOLUTION].due > due
        assert calendar_of(romashka).between(due, resumed.clocks[SlaTarget.RESOLUTION].due) == (
            timedelta(hours=8)
        )

    def test_priority_change_rearms_from_the_start_with_a_new_generation(self, romashka):
        state = apply(
            armed(romashka),
            romashka,
            TicketChange.PRIORITY_CHANGED,
            T0 + timedelta(minutes=1),
            priority=Priority.P1,
        )
        first = state.clocks[SlaTarget.FIRST_RESPONSE]
        assert first.due == T0 + timedelta(minutes=15)
        assert first.generation == 2
        assert state.round_the_clock

    def test_resolved_stops_all_and_reopened_restarts_resolution(self, romashka):
        state = apply(armed(romashka), romashka, TicketChange.RESOLVED, T0 + timedelta(hours=1))
        assert clocks.timers(state) == []
        reopened = apply(state, romashka, TicketChange.REOPENED, T0 + timedelta(hours=2))
        assert {t.target for t in clocks.timers(reopened)} == {SlaTarget.RESOLUTION}
        assert reopened.clocks[SlaTarget.RESOLUTION].generation == 2

    def test_an_irrelevant_change_changes_nothing(self, romashka):
        state = armed(romashka)
        assert apply(state, romashka, TicketChange.AUTOMATIC_REPLY, T0).version == state.version


class TestFire:
    def test_fires_once_then_is_spent(self, romashka):
        state = armed(romashka)
        due = state.clocks[SlaTarget.FIRST_RESPONSE].due
        firing, state = clocks.fire(
            state,
            SlaTarget.FIRST_RESPONSE,
            TimerKind.BREACH,
            1,
            due + timedelta(seconds=2),
            romashka,
        )
        assert firing.late_by == timedelta(seconds=2)
        assert firing.escalation.level == 2
        assert firing.escalation.notify == ("lead@opora.local",)
        again, _ = clocks.fire(
            state,
            SlaTarget.FIRST_RESPONSE,
            TimerKind.BREACH,
            1,
            due + timedelta(seconds=3),
            romashka,
        )
        assert again is None

    def test_stale_generation_or_early_firing_is_dropped(self, romashka):
        state = armed(romashka)
        due = state.clocks[SlaTarget.RESOLUTION].due
        assert (
            clocks.fire(state, SlaTarget.RESOLUTION, TimerKind.BREACH, 0, due, romashka)[0] is None
        )
        early = due - timedelta(minutes=5)
        assert (
            clocks.fire(state, SlaTarget.RESOLUTION, TimerKind.BREACH, 1, early, romashka)[0]
            is None
        )

    def test_p1_and_resolution_breaches_go_to_the_account_manager(self, romashka):
        p1 = armed(romashka, Priority.P1)
        due = p1.clocks[SlaTarget.FIRST_RESPONSE].due
        firing, _ = clocks.fire(p1, SlaTarget.FIRST_RESPONSE, TimerKind.BREACH, 1, due, romashka)
        assert firing.escalation.notify == ("am@opora.local",)
        warning, _ = clocks.fire(p1, SlaTarget.FIRST_RESPONSE, TimerKind.WARNING, 1, due, romashka)
        assert warning.escalation is None


class TestMet:
    """A clock that stops before its breach fired counts as met, once."""

    def test_first_response_in_time_is_met_once(self, romashka):
        state = armed(romashka)
        acked = apply(state, romashka, TicketChange.ACKNOWLEDGED, T0 + timedelta(minutes=5))
        assert clocks.met(state, acked) == [SlaTarget.FIRST_RESPONSE]
        assert clocks.met(acked, acked) == []

    def test_a_breached_clock_stopped_late_is_not_met(self, romashka):
        state = armed(romashka)
        breached = state.model_copy(update={"fired": [f"{SlaTarget.FIRST_RESPONSE}:breach:1"]})
        late = apply(breached, romashka, TicketChange.ACKNOWLEDGED, T0 + timedelta(hours=5))
        assert clocks.met(breached, late) == []

    def test_resolving_stops_both_clocks_in_time(self, romashka):
        state = armed(romashka)
        done = apply(state, romashka, TicketChange.RESOLVED, T0 + timedelta(minutes=30))
        assert sorted(clocks.met(state, done)) == sorted(
            [SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION]
        )
