"""The deadlines of a ticket's two clocks from its contract, in business time. Pure.

Targets run in the contract's business hours (its calendar: weekly hours, public holidays,
extra days off and working days), except for priorities the contract runs round the clock.
A target in days ('3d') is that many working days of the calendar's longest day.
"""

from dataclasses import dataclass
from datetime import datetime

from opora_shared.business_hours import BusinessCalendar
from opora_shared.contracts import Contract
from opora_shared.vocabulary import Priority

_CALENDARS: dict[tuple[str, str], BusinessCalendar] = {}


@dataclass(frozen=True, slots=True)
class Deadlines:
    """When the first response and the resolution are due."""

    first_response_due: datetime
    resolution_due: datetime


def calendar_of(contract: Contract) -> BusinessCalendar:
    """The business calendar of a contract revision (built once, then reused)."""
    key = (contract.tenant, contract.revision)
    if key not in _CALENDARS:
        _CALENDARS[key] = BusinessCalendar.from_contract(contract.calendar)
    return _CALENDARS[key]


def deadlines(contract: Contract, priority: Priority, received_at: datetime) -> Deadlines:
    """The deadlines of a ticket received at ``received_at`` with this priority."""
    calendar = calendar_of(contract)
    round_the_clock = priority in contract.sla.round_the_clock
    return Deadlines(
        first_response_due=calendar.deadline(
            received_at,
            contract.target("first_response", priority),
            round_the_clock=round_the_clock,
        ),
        resolution_due=calendar.deadline(
            received_at, contract.target("resolution", priority), round_the_clock=round_the_clock
        ),
    )
