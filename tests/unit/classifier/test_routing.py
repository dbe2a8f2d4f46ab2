"""Routing rules: skill, shift (with Russian holidays), least load, round-robin, on-duty."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from opora_classifier.routing import (
    EngineerLoad,
    OpenTicket,
    assign,
    plan_load,
    shift_end_reassignments,
    ticket_facts,
)
from opora_shared.events import Actor, TicketAssigned, TicketUpdated
from opora_shared.team import Team, load_team, parse_team
from opora_shared.testing.factories import make_ticket_classified
from opora_shared.vocabulary import Category, Priority, TicketChange

TEAM_FILE = Path(__file__).resolve().parents[3] / "deploy" / "team.yml"
MSK = ZoneInfo("Europe/Moscow")

WEDNESDAY_NOON = datetime(2026, 11, 25, 12, 0, tzinfo=MSK)
WEDNESDAY_EVENING = datetime(2026, 11, 25, 19, 30, tzinfo=MSK)
SATURDAY = datetime(2026, 11, 28, 11, 0, tzinfo=MSK)
UNITY_DAY = datetime(2026, 11, 4, 12, 0, tzinfo=MSK)  # a Wednesday, a public holiday
FRIDAY_AFTER_SHIFT = datetime(2026, 11, 27, 18, 5, tzinfo=MSK)


@pytest.fixture
def team() -> Team:
    """The brief's team: maria, alexey, oleg on the workday shift; duty round the clock."""
    return load_team(TEAM_FILE)


@pytest.fixture
def desk() -> Team:
    """The brief's team plus anna, a second service-desk engineer with maria's skills."""
    data = yaml.safe_load(TEAM_FILE.read_text(encoding="utf-8"))
    maria = next(e for e in data["engineers"] if e["id"] == "maria")
    # her own person: maria's chat handles are maria's (the team file refuses shared ones)
    anna = {**maria, "id": "anna", "email": "anna@opora.local", "chat": {}}
    data["engineers"].insert(1, anna)
    return parse_team(yaml.safe_dump(data, allow_unicode=True), "test team")


def loaded(
    count: int, *, last: datetime | None = None, priority=Priority.P3, at=WEDNESDAY_NOON
) -> EngineerLoad:
    """A load of ``count`` open tickets."""
    entry = OpenTicket(tenant="romashka", priority=priority, assigned_at=at)
    return EngineerLoad(open={f"t{i}": entry for i in range(count)}, last_assigned_at=last)


def route(team: Team, now: datetime, loads=None, *, category=Category.PRINTING, priority=None):
    return assign(
        team,
        category=category,
        priority=priority or Priority.P3,
        now=now,
        loads=loads or {},
    )


class TestOnShift:
    def test_in_hours_the_engineer_with_the_skill_takes_it(self, team):
        result = route(team, WEDNESDAY_NOON, {"maria": loaded(3)})
        assert result.engineer.id == "maria"
        assert result.rule == "skill_least_load"
        assert result.team == "service-desk"
        assert result.reasons == (
            "printing → service-desk",
            "maria on shift, 3 open, the only one with the skill on shift",
        )

    def test_the_category_decides_the_team_and_the_engineer(self, team):
        for category, engineer, group in (
            (Category.NETWORK, "alexey", "infrastructure"),
            (Category.ACCOUNTING_SOFTWARE, "oleg", "accounting"),
            (Category.EMAIL, "maria", "service-desk"),
        ):
            result = route(team, WEDNESDAY_NOON, category=category)
            assert (result.engineer.id, result.team) == (engineer, group)

    def test_the_on_duty_engineer_is_not_a_daytime_candidate(self, team):
        result = route(team, WEDNESDAY_NOON, {"maria": loaded(15), "duty": loaded(0)})
        assert result.engineer.id == "maria"

    def test_a_skill_only_duty_has_goes_to_duty_at_any_hour(self, team):
        result = route(team, WEDNESDAY_NOON, category=Category.OTHER)
        assert result.engineer.id == "duty"
        assert result.rule == "on_duty_fallback"
        assert "nobody but duty, the on-duty engineer, has the skill other" in result.reasons


class TestOnDuty:
    def test_every_p1_goes_to_duty_even_in_hours(self, team):
        result = route(team, WEDNESDAY_NOON, priority=Priority.P1)
        assert result.engineer.id == "duty"
        assert result.rule == "on_duty_p1"
        assert result.team == "service-desk"
        assert result.reasons[1].startswith("P1: duty, the on-duty engineer, takes every P1")

    def test_after_the_shift_goes_to_duty_and_says_when_the_skill_is_back(self, team):
        result = route(team, WEDNESDAY_EVENING)
        assert result.engineer.id == "duty"
        assert result.rule == "on_duty_out_of_hours"
        assert "nobody with the skill is on shift (maria is back Thu 26 Nov 09:00 MSK)" in (
            result.reasons
        )

    def test_weekend_goes_to_duty(self, team):
        result = route(team, SATURDAY, category=Category.NETWORK)
        assert (result.engineer.id, result.rule) == ("duty", "on_duty_out_of_hours")
        assert "alexey is back Mon 30 Nov 09:00 MSK" in result.reasons[1]

    def test_a_russian_public_holiday_on_a_wednesday_goes_to_duty(self, team):
        result = route(team, UNITY_DAY)
        assert (result.engineer.id, result.rule) == ("duty", "on_duty_out_of_hours")
        assert "maria is back Thu 05 Nov 09:00 MSK" in result.reasons[1]

    def test_shift_hours_are_half_open(self, team):
        assert route(team, WEDNESDAY_NOON.replace(hour=9)).engineer.id == "maria"
        assert route(team, WEDNESDAY_NOON.replace(hour=18)).engineer.id == "duty"
        utc = datetime(2026, 11, 25, 14, 59, tzinfo=UTC)  # 17:59 in Moscow
        assert route(team, utc).engineer.id == "maria"


class TestLeastLoad:
    def test_the_fewest_open_tickets_wins(self, desk):
        result = route(desk, WEDNESDAY_NOON, {"maria": loaded(3), "anna": loaded(1)})
        assert result.engineer.id == "anna"
        assert result.reasons[1] == "anna on shift, 1 open, fewest of 2 with the skill on shift"

    def test_equals_take_turns_by_who_was_assigned_least_recently(self, desk):
        loads = {
            "maria": loaded(2, last=WEDNESDAY_NOON - timedelta(minutes=5)),
            "anna": loaded(2, last=WEDNESDAY_NOON - timedelta(minutes=1)),
        }
        result = route(desk, WEDNESDAY_NOON, loads)
        assert result.engineer.id == "maria"
        assert (
            "tied with anna at 2 open: maria was assigned least recently (round-robin)"
            in result.reasons
        )

    def test_never_assigned_comes_first_then_the_team_file_order(self, desk):
        loads = {"maria": loaded(0, last=WEDNESDAY_NOON - timedelta(hours=1))}
        result = route(desk, WEDNESDAY_NOON, loads)
        assert result.engineer.id == "anna"
        assert "anna has not been assigned a ticket yet" in result.reasons[2]
        assert route(desk, WEDNESDAY_NOON, {}).engineer.id == "maria"  # first in the file

    def test_a_run_of_tickets_alternates_between_equals(self, desk):
        loads: dict[str, EngineerLoad] = {}
        now = WEDNESDAY_NOON
        chosen = []
        for number in range(6):
            result = route(desk, now, loads)
            engineer = result.engineer.id
            entry = OpenTicket(tenant="romashka", priority=Priority.P3, assigned_at=now)
            current = loads.get(engineer, EngineerLoad())
            loads[engineer] = current.with_ticket(f"n{number}", entry, assigned=now)
            chosen.append(engineer)
            now += timedelta(minutes=1)
        assert chosen == ["maria", "anna"] * 3

    def test_an_engineer_at_max_open_is_skipped(self, desk):
        result = route(desk, WEDNESDAY_NOON, {"maria": loaded(20), "anna": loaded(19)})
        assert result.engineer.id == "anna"
        assert result.reasons[1].endswith(
            "the only one with the skill on shift below their maximum"
        )
        assert "skipped at their maximum: maria 20/20" in result.reasons

    def test_when_everyone_is_full_duty_takes_the_overflow(self, desk):
        result = route(desk, WEDNESDAY_NOON, {"maria": loaded(20), "anna": loaded(21)})
        assert (result.engineer.id, result.rule) == ("duty", "on_duty_fallback")
        assert result.reasons[1] == (
            "everyone with the skill on shift is at their maximum (maria 20/20, anna 21/20)"
        )
        assert result.reasons[2] == "duty, the on-duty engineer, takes the overflow (0 open of 40)"

    def test_when_duty_is_full_too_the_least_loaded_takes_it_anyway(self, desk):
        loads = {"maria": loaded(22), "anna": loaded(21), "duty": loaded(40)}
        result = route(desk, WEDNESDAY_NOON, loads)
        assert (result.engineer.id, result.rule) == ("anna", "skill_least_load")
        assert "and so is duty (40/40)" in result.reasons[1]
        assert result.reasons[2] == "anna has the fewest (21 open) and takes it anyway"


class TestShiftEnd:
    def test_open_p1_and_p2_move_to_duty_when_the_shift_ends_p3_stays(self, team):
        since = WEDNESDAY_NOON.astimezone(UTC)
        loads = {
            "maria": EngineerLoad(
                open={
                    "101": OpenTicket(
                        tenant="romashka",
                        priority=Priority.P2,
                        assigned_at=since,
                        team="service-desk",
                    ),
                    "102": OpenTicket(tenant="romashka", priority=Priority.P3, assigned_at=since),
                }
            ),
            "alexey": EngineerLoad(
                open={"103": OpenTicket(tenant="vector", priority=Priority.P1, assigned_at=since)}
            ),
        }
        moves = shift_end_reassignments(team, loads, FRIDAY_AFTER_SHIFT)
        assert [(m.ticket_id, m.previous, m.assignment.engineer.id) for m in moves] == [
            ("103", "alexey", "duty"),
            ("101", "maria", "duty"),
        ]
        move = moves[1]
        assert (move.tenant, move.priority, move.since) == ("romashka", Priority.P2, since)
        assert move.assignment.rule == "shift_end"
        assert move.assignment.team == "service-desk"
        assert move.assignment.reasons == (
            "maria's shift is over (back Mon 30 Nov 09:00 MSK)",
            "a P2 does not wait for the next shift: duty, the on-duty engineer, takes it",
        )

    def test_nothing_moves_while_the_shift_lasts(self, team):
        loads = {"maria": loaded(3, priority=Priority.P1)}
        assert shift_end_reassignments(team, loads, WEDNESDAY_NOON) == []

    def test_a_holiday_ends_the_shift_too(self, team):
        loads = {"maria": loaded(1, priority=Priority.P2)}
        assert len(shift_end_reassignments(team, loads, UNITY_DAY)) == 1

    def test_a_ticket_given_by_hand_after_the_shift_stays(self, team):
        evening = WEDNESDAY_EVENING.astimezone(UTC)
        by_hand = OpenTicket(
            tenant="romashka", priority=Priority.P2, assigned_at=evening, rule="manual"
        )
        in_hours = by_hand.model_copy(update={"assigned_at": WEDNESDAY_NOON})
        loads = {"maria": EngineerLoad(open={"201": by_hand, "202": in_hours})}
        moves = shift_end_reassignments(team, loads, SATURDAY)
        assert [m.ticket_id for m in moves] == ["202"]

    def test_duty_keeps_its_tickets(self, team):
        loads = {"duty": loaded(3, priority=Priority.P1)}
        assert shift_end_reassignments(team, loads, SATURDAY) == []

    def test_every_replica_derives_the_same_event_id_for_a_move(self, team):
        loads = {"maria": loaded(1, priority=Priority.P2)}
        (first,) = shift_end_reassignments(team, loads, FRIDAY_AFTER_SHIFT)
        (again,) = shift_end_reassignments(team, loads, SATURDAY)
        assert first.event_id == again.event_id
        moved_later = {"maria": loaded(1, priority=Priority.P2, at=WEDNESDAY_EVENING)}
        (other,) = shift_end_reassignments(team, moved_later, SATURDAY)
        assert other.event_id != first.event_id  # handed back and moved again: a new move

    def test_an_engineer_gone_from_the_team_file_hands_over_at_once(self, team):
        loads = {"ivan": loaded(1, priority=Priority.P2)}
        (move,) = shift_end_reassignments(team, loads, WEDNESDAY_NOON)
        assert move.assignment.reasons[0] == "ivan is no longer in the team file"


def assigned(ticket, assignee: str, *, minutes: int = 0, rule="skill_least_load"):
    return TicketAssigned(
        event_id=uuid.uuid4(),
        occurred_at=ticket.occurred_at + timedelta(minutes=minutes),
        tenant=ticket.tenant,
        ticket_id=ticket.ticket_id,
        assignee=assignee,
        assignee_email=f"{assignee}@opora.local",
        team="service-desk",
        priority=ticket.priority,
        rule=rule,
        reasons=("why",),
    )


def updated(ticket, change: TicketChange, *, minutes: int, **extra):
    return TicketUpdated(
        event_id=uuid.uuid4(),
        occurred_at=ticket.occurred_at + timedelta(minutes=minutes),
        tenant=ticket.tenant,
        ticket_id=ticket.ticket_id,
        change=change,
        actor=Actor(kind="engineer", id="maria@opora.local"),
        **extra,
    )


class TestLoadFollowsTheHistory:
    def facts(self, *events):
        first = events[0]
        return ticket_facts(first.tenant, first.ticket_id, events)

    def test_an_assigned_open_ticket_is_carried_by_its_assignee(self):
        ticket = make_ticket_classified(category=Category.PRINTING, priority=Priority.P2)
        first = assigned(ticket, "maria")
        facts = self.facts(ticket, first)
        assert facts.holder == "maria"
        plan = plan_load(facts, {})
        holder, entry = plan.put
        assert holder == "maria"
        assert (entry.priority, entry.event_id, entry.assigned_at) == (
            Priority.P2,
            first.event_id,
            first.occurred_at,
        )
        carried = {"maria": EngineerLoad().with_ticket(ticket.ticket_id, entry)}
        assert plan_load(facts, carried).empty

    def test_resolution_takes_it_off_and_reopening_gives_it_back_to_the_last_assignee(self):
        ticket = make_ticket_classified(priority=Priority.P3)
        moved = assigned(ticket, "duty", minutes=5, rule="shift_end")
        history = [ticket, assigned(ticket, "maria"), moved]
        entry = OpenTicket(
            tenant=ticket.tenant, priority=Priority.P3, assigned_at=ticket.received_at
        )
        loads = {"duty": EngineerLoad().with_ticket(ticket.ticket_id, entry)}
        resolved = self.facts(*history, updated(ticket, TicketChange.RESOLVED, minutes=9))
        assert not resolved.open
        assert plan_load(resolved, loads).remove_from == ("duty",)
        assert plan_load(resolved, loads).put is None
        reopened = self.facts(
            *history,
            updated(ticket, TicketChange.RESOLVED, minutes=9),
            updated(ticket, TicketChange.REOPENED, minutes=12),
        )
        plan = plan_load(reopened, {})
        assert plan.put[0] == "duty"
        assert plan.put[1].event_id == moved.event_id

    def test_a_priority_change_is_written_to_the_holders_entry(self):
        ticket = make_ticket_classified(priority=Priority.P3)
        first = assigned(ticket, "maria")
        entry = OpenTicket(
            tenant=ticket.tenant, priority=Priority.P3, assigned_at=ticket.received_at
        )
        loads = {"maria": EngineerLoad().with_ticket(ticket.ticket_id, entry)}
        raised = self.facts(
            ticket,
            first,
            updated(ticket, TicketChange.PRIORITY_CHANGED, minutes=3, priority=Priority.P2),
        )
        plan = plan_load(raised, loads)
        assert plan.put == ("maria", entry.model_copy(update={"priority": Priority.P2}))

    def test_a_stale_holder_is_cleared(self):
        ticket = make_ticket_classified()
        entry = OpenTicket(
            tenant=ticket.tenant, priority=Priority.P3, assigned_at=ticket.received_at
        )
        loads = {
            "maria": EngineerLoad().with_ticket(ticket.ticket_id, entry),
            "duty": EngineerLoad().with_ticket(ticket.ticket_id, entry),
        }
        plan = plan_load(self.facts(ticket, assigned(ticket, "duty")), loads)
        assert plan.remove_from == ("maria",)
        assert plan.put is None

    def test_an_unassigned_ticket_is_carried_by_nobody(self):
        ticket = make_ticket_classified()
        facts = self.facts(ticket)
        assert facts.holder is None
        assert facts.category is Category.NETWORK
        assert plan_load(facts, {}).empty


class TestEngineerLoad:
    def test_adding_twice_counts_once_and_the_round_robin_mark_only_moves_forward(self):
        entry = OpenTicket(tenant="romashka", priority=Priority.P3, assigned_at=WEDNESDAY_NOON)
        later = WEDNESDAY_NOON + timedelta(minutes=5)
        load = EngineerLoad().with_ticket("1", entry, assigned=later)
        again = load.with_ticket("1", entry, assigned=WEDNESDAY_NOON)
        assert again.count == 1
        assert again.last_assigned_at == later
        assert again.without_ticket("1").count == 0
        assert again.without_ticket("2") is again

    def test_round_trips_as_json(self):
        load = loaded(2, last=WEDNESDAY_NOON)
        assert EngineerLoad.model_validate_json(load.model_dump_json()) == load
