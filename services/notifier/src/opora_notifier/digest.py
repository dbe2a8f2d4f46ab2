"""The daily digest: when a tenant's is due, and which open tickets each person hears of. Pure.

A contract with a ``digest`` section (``DigestPolicy``) gets, once per local day from its
``at`` time on (in the contract's timezone; business days only unless told otherwise), one
digest per person: with ``to: assignees`` each engineer their own open tickets of the listed
priorities (P3 and P4 by default) and the team lead the unassigned ones (or those of someone
no longer in the team file); with ``to: lead`` the lead all of them. Nobody gets an empty
digest. The tickets come from the ticket index (``TicketSummary``), most urgent first.

Nothing here reads the clock, the index or KV: the caller passes ``now`` and the summaries.
Exactly once per (tenant, person, day) is the dispatcher's: the digest's notification id is
derived from them (``Planner.digest``).
"""

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from opora_shared.business_hours import BusinessCalendar
from opora_shared.contracts import Calendar, DigestPolicy
from opora_shared.team import Engineer, Person, Team
from opora_shared.ticket_index import OPEN_STATUSES, TicketSummary


def _at(policy: DigestPolicy) -> time:
    hours, minutes = policy.at.split(":")
    return time(int(hours), int(minutes))


def digest_day(policy: DigestPolicy, calendar: Calendar, now: datetime) -> date | None:
    """The contract-local day whose digest is due at ``now``; None before its time, or on a
    day off when ``business_days_only``."""
    local = now.astimezone(ZoneInfo(calendar.timezone))
    if local.time() < _at(policy):
        return None
    if policy.business_days_only and not BusinessCalendar.from_contract(calendar).hours_on(
        local.date()
    ):
        return None
    return local.date()


def due_at(policy: DigestPolicy, calendar: Calendar, day: date) -> datetime:
    """The instant a day's digest became due (its ``at`` on that day, contract-local)."""
    return datetime.combine(day, _at(policy), tzinfo=ZoneInfo(calendar.timezone))


@dataclass(frozen=True, slots=True)
class DigestBundle:
    """One person's digest: who, and their tickets (most urgent, then oldest, first)."""

    person: Engineer | Person
    tickets: tuple[TicketSummary, ...]
    everyone: bool
    """True when it is the lead's list of tickets that are nobody's (or, to: lead, all)."""


def bundles(summaries: list[TicketSummary], policy: DigestPolicy, team: Team) -> list[DigestBundle]:
    """Who hears of which open tickets: engineers in team-file order, then the lead."""
    wanted = set(policy.priorities)
    chosen = sorted(
        (s for s in summaries if s.status in OPEN_STATUSES and s.priority in wanted),
        key=lambda s: (s.priority or "", int(s.id)),
    )
    by_person: dict[str, list[TicketSummary]] = {}
    for summary in chosen:
        engineer = team.engineer(summary.assignee) if summary.assignee else None
        owner = engineer.id if engineer is not None and policy.to == "assignees" else None
        by_person.setdefault(owner or "", []).append(summary)
    found = [
        DigestBundle(engineer, tuple(by_person[engineer.id]), everyone=False)
        for engineer in team.engineers
        if engineer.id in by_person
    ]
    if "" in by_person:
        found.append(DigestBundle(team.lead, tuple(by_person[""]), everyone=True))
    return found
