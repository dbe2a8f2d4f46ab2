"""Routing: who takes a ticket, and when a ticket moves to the on-duty engineer. Pure.

The rules, first that applies (``assign``):

1. **P1** goes to the on-duty engineer, whatever the hour (``on_duty_p1``).
2. The category names its owning team (``Team.team_for``); the candidates are the engineers
   with the category among their skills, the on-duty engineer aside (duty is the safety net,
   not one more pair of hands in the daytime). Nobody but duty has the skill: duty takes it
   (``on_duty_fallback``).
3. Nobody with the skill is on shift now (evenings, weekends, public holidays of the shift's
   calendar): the on-duty engineer (``on_duty_out_of_hours``).
4. Among those on shift and below their ``max_open``, the fewest open tickets wins; among
   equals, the one assigned least recently (round-robin; never assigned comes first, then the
   team file's order) (``skill_least_load``).
5. Everyone with the skill on shift is at their ``max_open``: the on-duty engineer takes the
   overflow if below their own maximum (``on_duty_fallback``); if duty is full too, the least
   loaded on shift takes it anyway (``skill_least_load``, and the reasons say so). A ticket
   never goes unassigned.

``shift_end_reassignments`` finds the open P1/P2 tickets of engineers who are off shift (or
no longer in the team file): they move to the on-duty engineer (``shift_end``) rather than wait
for the morning; a ticket assigned by hand (``manual``) outside the engineer's shift stays.
``ticket_facts`` and ``plan_load`` keep the load projection in line with a ticket's history.

Reasons are sentences a team lead reads in the ticket. This module takes ``now``, the team and
the loads as arguments; it never reads a clock, KV or the network.
"""

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from opora_shared.business_hours import BusinessCalendar
from opora_shared.contracts import Calendar
from opora_shared.events import (
    Event,
    TicketAssigned,
    TicketClassified,
    TicketUpdated,
    derive_id,
)
from opora_shared.team import Engineer, Team
from opora_shared.vocabulary import Category, Priority, TicketChange

Rule = Literal[
    "skill_least_load", "on_duty_p1", "on_duty_out_of_hours", "on_duty_fallback", "shift_end"
]
"""The rules this module applies (``manual`` is a person's, never routing's)."""

MOVED_AT_SHIFT_END = (Priority.P1, Priority.P2)
"""Priorities that do not wait for the next shift."""

_NEVER = datetime.min.replace(tzinfo=UTC)


class OpenTicket(BaseModel):
    """One open ticket an engineer carries, as the load projection stores it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant: str
    priority: Priority
    assigned_at: AwareDatetime
    event_id: uuid.UUID | None = None
    """The TicketAssigned that gave it (to publish it again after a crash)."""
    rule: Rule | Literal["manual"] | None = None
    team: str | None = None
    reasons: tuple[str, ...] = ()


class EngineerLoad(BaseModel):
    """One engineer's key in the load projection: open tickets and the last assignment."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    open: dict[str, OpenTicket] = {}
    last_assigned_at: AwareDatetime | None = None

    @property
    def count(self) -> int:
        """How many open tickets the engineer carries."""
        return len(self.open)

    def with_ticket(
        self, ticket_id: str, entry: OpenTicket, *, assigned: datetime | None = None
    ) -> "EngineerLoad":
        """This load with the ticket set to ``entry``; ``assigned`` moves the round-robin mark."""
        last = self.last_assigned_at
        if assigned is not None:
            last = assigned if last is None else max(last, assigned)
        return EngineerLoad(open={**self.open, ticket_id: entry}, last_assigned_at=last)

    def without_ticket(self, ticket_id: str) -> "EngineerLoad":
        """This load without the ticket (the same load when it was not there)."""
        if ticket_id not in self.open:
            return self
        rest = {key: value for key, value in self.open.items() if key != ticket_id}
        return EngineerLoad(open=rest, last_assigned_at=self.last_assigned_at)


EMPTY = EngineerLoad()


@dataclass(frozen=True, slots=True)
class Assignment:
    """Who takes a ticket, by which rule, and why."""

    engineer: Engineer
    team: str | None
    rule: Rule
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reassignment:
    """An open ticket that moves from an engineer off shift to the on-duty engineer."""

    ticket_id: str
    tenant: str
    priority: Priority
    previous: str
    since: datetime
    """When the previous engineer got it: with the ticket and engineer, the move's identity."""
    assignment: Assignment

    @property
    def event_id(self) -> uuid.UUID:
        """The id of this move's TicketAssigned: every replica that makes it derives the same."""
        return derive_id(
            self.ticket_id,
            TicketAssigned.event_type(),
            "shift_end",
            self.previous,
            self.since.isoformat(),
        )


def assignment_id(classified: TicketClassified) -> uuid.UUID:
    """The id of the TicketAssigned that answers a classification (the same on a redelivery)."""
    return derive_id(classified.ticket_id, TicketAssigned.event_type(), str(classified.event_id))


# -- shifts ------------------------------------------------------------------------------------

_CALENDARS: dict[str, BusinessCalendar] = {}


def shift_calendar(calendar: Calendar) -> BusinessCalendar:
    """The business calendar of a shift (memoised by the shift's definition)."""
    key = calendar.model_dump_json()
    cached = _CALENDARS.get(key)
    if cached is None:
        cached = _CALENDARS[key] = BusinessCalendar.from_contract(calendar)
    return cached


def on_shift(team: Team, engineer: Engineer, now: datetime) -> bool:
    """True when ``now`` is inside the engineer's shift."""
    return shift_calendar(team.shifts[engineer.shift]).is_working(now)


def back_on_shift(team: Team, engineer: Engineer, now: datetime) -> datetime:
    """When the engineer's next shift starts (``now`` itself when on shift)."""
    return shift_calendar(team.shifts[engineer.shift]).next_working(now)


def _when(team: Team, engineer: Engineer, instant: datetime) -> str:
    """An instant in the engineer's shift timezone: 'Mon 30 Nov 09:00 MSK'."""
    zone = shift_calendar(team.shifts[engineer.shift]).timezone
    local = instant.astimezone(zone)
    return f"{local:%a %d %b %H:%M} {local.tzname()}"


# -- assignment --------------------------------------------------------------------------------


def _open(loads: Mapping[str, EngineerLoad], engineer: Engineer) -> int:
    return loads.get(engineer.id, EMPTY).count


def _least_loaded(
    team: Team, candidates: list[Engineer], loads: Mapping[str, EngineerLoad]
) -> tuple[Engineer, tuple[str, ...]]:
    """The candidate with the fewest open tickets, round-robin among equals; the tie's reason."""
    order = {engineer.id: index for index, engineer in enumerate(team.engineers)}

    def key(engineer: Engineer) -> tuple[int, datetime, int]:
        load = loads.get(engineer.id, EMPTY)
        return load.count, load.last_assigned_at or _NEVER, order[engineer.id]

    chosen = min(candidates, key=key)
    count = _open(loads, chosen)
    rivals = [e.id for e in candidates if e.id != chosen.id and _open(loads, e) == count]
    if not rivals:
        return chosen, ()
    last = loads.get(chosen.id, EMPTY).last_assigned_at
    why = "has not been assigned a ticket yet" if last is None else "was assigned least recently"
    return chosen, (
        f"tied with {', '.join(rivals)} at {count} open: {chosen.id} {why} (round-robin)",
    )


def assign(
    team: Team,
    *,
    category: Category,
    priority: Priority,
    now: datetime,
    loads: Mapping[str, EngineerLoad],
) -> Assignment:
    """Pick the engineer for a new ticket by the rules in the module docstring."""
    duty = team.duty()
    group = team.team_for(category)
    owner = f"{category} → {group}" if group else f"{category}: no team owns it"
    duty_load = f"{_open(loads, duty)} open"
    if priority is Priority.P1:
        return Assignment(
            duty,
            group,
            "on_duty_p1",
            (owner, f"P1: {duty.id}, the on-duty engineer, takes every P1 ({duty_load})"),
        )
    skilled = [e for e in team.engineers if category in e.skills and e.id != duty.id]
    if not skilled:
        return Assignment(
            duty,
            group,
            "on_duty_fallback",
            (owner, f"nobody but {duty.id}, the on-duty engineer, has the skill {category}"),
        )
    present = [e for e in skilled if on_shift(team, e, now)]
    if not present:
        first = min(skilled, key=lambda e: back_on_shift(team, e, now))
        back = _when(team, first, back_on_shift(team, first, now))
        return Assignment(
            duty,
            group,
            "on_duty_out_of_hours",
            (
                owner,
                f"nobody with the skill is on shift ({first.id} is back {back})",
                f"{duty.id}, the on-duty engineer, takes it out of hours ({duty_load})",
            ),
        )
    free = [e for e in present if _open(loads, e) < e.max_open]
    full = [e for e in present if _open(loads, e) >= e.max_open]
    at_max = ", ".join(f"{e.id} {_open(loads, e)}/{e.max_open}" for e in full)
    if free:
        chosen, tie = _least_loaded(team, free, loads)
        if len(present) == 1:
            standing = "the only one with the skill on shift"
        elif len(free) == 1:
            standing = "the only one with the skill on shift below their maximum"
        else:
            standing = f"fewest of {len(free)} with the skill on shift"
        reasons = [owner, f"{chosen.id} on shift, {_open(loads, chosen)} open, {standing}", *tie]
        if full:
            reasons.append(f"skipped at their maximum: {at_max}")
        return Assignment(chosen, group, "skill_least_load", tuple(reasons))
    overflow = f"everyone with the skill on shift is at their maximum ({at_max})"
    if _open(loads, duty) < duty.max_open:
        return Assignment(
            duty,
            group,
            "on_duty_fallback",
            (
                owner,
                overflow,
                f"{duty.id}, the on-duty engineer, takes the overflow "
                f"({_open(loads, duty)} open of {duty.max_open})",
            ),
        )
    chosen, tie = _least_loaded(team, present, loads)
    return Assignment(
        chosen,
        group,
        "skill_least_load",
        (
            owner,
            f"{overflow}, and so is {duty.id} ({_open(loads, duty)}/{duty.max_open})",
            f"{chosen.id} has the fewest ({_open(loads, chosen)} open) and takes it anyway",
            *tie,
        ),
    )


def shift_end_reassignments(
    team: Team, loads: Mapping[str, EngineerLoad], now: datetime
) -> list[Reassignment]:
    """The open P1/P2 tickets of engineers off shift (or gone from the team), to move to duty."""
    duty = team.duty()
    moves = []
    for engineer_id, load in sorted(loads.items()):
        if engineer_id == duty.id:
            continue
        engineer = team.engineer(engineer_id)
        if engineer is None:
            why = f"{engineer_id} is no longer in the team file"
        elif on_shift(team, engineer, now):
            continue
        else:
            back = _when(team, engineer, back_on_shift(team, engineer, now))
            why = f"{engineer_id}'s shift is over (back {back})"
        for ticket_id, entry in sorted(load.open.items()):
            if entry.priority not in MOVED_AT_SHIFT_END:
                continue
            if (
                entry.rule == "manual"
                and engineer is not None
                and not on_shift(team, engineer, entry.assigned_at)
            ):
                continue  # handed to them by hand outside their shift: they chose to take it
            reasons = (
                why,
                f"a {entry.priority} does not wait for the next shift: "
                f"{duty.id}, the on-duty engineer, takes it",
            )
            moves.append(
                Reassignment(
                    ticket_id=ticket_id,
                    tenant=entry.tenant,
                    priority=entry.priority,
                    previous=engineer_id,
                    since=entry.assigned_at,
                    assignment=Assignment(duty, entry.team, "shift_end", reasons),
                )
            )
    return moves


# -- keeping the projection in line with the history -------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What routing needs to know of a ticket, read from its history."""

    tenant: str
    ticket_id: str
    category: Category | None = None
    priority: Priority | None = None
    open: bool = True
    """False once resolved (and not reopened since)."""
    assignment: TicketAssigned | None = None
    """The latest assignment."""
    assignment_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)

    @property
    def holder(self) -> str | None:
        """Who should carry the ticket in the load projection: its assignee while open."""
        return self.assignment.assignee if self.open and self.assignment else None


def ticket_facts(tenant: str, ticket_id: str, events: Iterable[Event]) -> TicketFacts:
    """Fold a ticket's history, oldest first, into what routing needs."""
    facts = TicketFacts(tenant=tenant, ticket_id=ticket_id)
    category, priority, is_open = facts.category, facts.priority, facts.open
    assignment: TicketAssigned | None = None
    ids: set[uuid.UUID] = set()
    for event in events:
        if isinstance(event, TicketClassified):
            category, priority = event.category, event.priority
        elif isinstance(event, TicketAssigned):
            assignment = event
            ids.add(event.event_id)
            priority = priority or event.priority
        elif isinstance(event, TicketUpdated):
            if event.change is TicketChange.RESOLVED:
                is_open = False
            elif event.change is TicketChange.REOPENED:
                is_open = True
            elif event.change is TicketChange.PRIORITY_CHANGED and event.priority:
                priority = event.priority
    return TicketFacts(
        tenant=tenant,
        ticket_id=ticket_id,
        category=category,
        priority=priority,
        open=is_open,
        assignment=assignment,
        assignment_ids=frozenset(ids),
    )


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How to make the load projection agree with a ticket's history."""

    remove_from: tuple[str, ...] = ()
    put: tuple[str, OpenTicket] | None = None

    @property
    def empty(self) -> bool:
        """True when the projection already agrees."""
        return not self.remove_from and self.put is None


def plan_load(facts: TicketFacts, loads: Mapping[str, EngineerLoad]) -> LoadPlan:
    """Take the ticket from whoever should not carry it; give it to its holder, if any."""
    holder = facts.holder
    remove = tuple(
        engineer_id
        for engineer_id, load in sorted(loads.items())
        if engineer_id != holder and facts.ticket_id in load.open
    )
    if holder is None or facts.assignment is None:
        return LoadPlan(remove_from=remove)
    current = loads.get(holder, EMPTY).open.get(facts.ticket_id)
    priority = facts.priority or facts.assignment.priority
    if current is not None:
        if current.priority == priority:
            return LoadPlan(remove_from=remove)
        return LoadPlan(remove, (holder, current.model_copy(update={"priority": priority})))
    assigned = facts.assignment
    entry = OpenTicket(
        tenant=facts.tenant,
        priority=priority,
        assigned_at=assigned.occurred_at,
        event_id=assigned.event_id,
        rule=assigned.rule,
        team=assigned.team,
        reasons=assigned.reasons,
    )
    return LoadPlan(remove, (holder, entry))
