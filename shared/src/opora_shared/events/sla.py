"""SLA events: clocks armed, warnings, breaches and escalations."""

from typing import Literal

from pydantic import AwareDatetime, Field

from opora_shared.events.base import Event
from opora_shared.vocabulary import Priority, SlaTarget


class SlaArmed(Event):
    """The contract's clocks started for this ticket; the deadlines are the real ones."""

    type: Literal["sla.armed"] = "sla.armed"
    priority: Priority
    first_response_due: AwareDatetime
    resolution_due: AwareDatetime
    timezone: str = Field(description="the contract's timezone, for showing deadlines")
    generation: int = Field(default=1, description="bumped on each re-arm; stale firings drop")


class SlaWarning(Event):
    """A target is about to be missed (the contract's warning threshold passed)."""

    type: Literal["sla.warning"] = "sla.warning"
    target: SlaTarget
    due_at: AwareDatetime
    threshold: float = Field(ge=0.0, le=1.0)
    late_by_s: float = Field(
        default=0.0, description="how late the timer fired (e.g. after a restart)"
    )


class SlaBreached(Event):
    """A target was missed."""

    type: Literal["sla.breached"] = "sla.breached"
    target: SlaTarget
    due_at: AwareDatetime
    late_by_s: float = Field(
        default=0.0, description="how late the timer fired (e.g. after a restart)"
    )


class TicketEscalated(Event):
    """The ticket went up the contract's escalation chain."""

    type: Literal["sla.escalated"] = "sla.escalated"
    level: int = Field(ge=1)
    target: SlaTarget
    notify: tuple[str, ...] = Field(description="roles or addresses of that level")
    reason: str
