"""The deadlines of a ticket's two clocks from its contract. Pure.

Simple arithmetic for now (received time plus the target, a day being one working day); the
SLA issue replaces it with business-hours arithmetic over the contract's calendar.
"""

from dataclasses import dataclass
from datetime import datetime

from opora_shared.contracts import Contract
from opora_shared.vocabulary import Priority


@dataclass(frozen=True, slots=True)
class Deadlines:
    """When the first response and the resolution are due."""

    first_response_due: datetime
    resolution_due: datetime


def deadlines(contract: Contract, priority: Priority, received_at: datetime) -> Deadlines:
    """The deadlines of a ticket received at ``received_at`` with this priority."""
    return Deadlines(
        first_response_due=received_at + contract.target("first_response", priority),
        resolution_due=received_at + contract.target("resolution", priority),
    )
