"""A ticket's audit trail: every stored event, who caused it and what it said, oldest first.

The events stream is append-only and services may not delete from it (see
``deploy/nats/nats-server.secure.conf``), so the trail is the record. Lines name the actor:
the person or token on ``ticket.updated`` and ``ticket.assigned`` (manual), the channel and
requester on ``ticket.received``, the service otherwise. Bodies and reply texts are never
printed, only their length: the trail is safe to paste into a ticket or a chat.
"""

from dataclasses import dataclass
from datetime import datetime

from opora_shared.events import (
    Event,
    NotificationFailed,
    NotificationSent,
    SlaArmed,
    SlaBreached,
    SlaWarning,
    TicketAssigned,
    TicketClassified,
    TicketEscalated,
    TicketReceived,
    TicketUpdated,
)

_SERVICE_OF_FAMILY = {"sla": "sla-timer", "notification": "notifier"}


@dataclass(frozen=True, slots=True)
class AuditLine:
    """One event of the trail."""

    at: datetime
    type: str
    actor: str
    summary: str
    event_id: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready."""
        return {
            "at": self.at.isoformat(),
            "type": self.type,
            "actor": self.actor,
            "summary": self.summary,
            "event_id": self.event_id,
        }


def actor_of(event: Event) -> str:
    """Who caused an event, in a word or two."""
    if isinstance(event, TicketUpdated):
        return f"{event.actor.kind}:{event.actor.id}"
    if isinstance(event, TicketReceived):
        return f"{event.channel}:{event.requester.email}"
    if isinstance(event, TicketAssigned) and event.rule == "manual":
        return "engineer (manual assignment)"
    if isinstance(event, TicketClassified | TicketAssigned):
        return "service:classifier"
    return f"service:{_SERVICE_OF_FAMILY.get(event.family, event.family)}"


def summary_of(event: Event) -> str:
    """What an event said, without personal text (lengths instead of bodies)."""
    if isinstance(event, TicketReceived):
        files = len(event.attachments)
        return f"subject {event.subject!r}, body {len(event.body)} chars, {files} attachment(s)"
    if isinstance(event, TicketClassified):
        return (
            f"{event.category}/{event.kind}, scope {event.scope}, {event.priority}, "
            f"confidence {event.confidence:.2f}, contract {event.contract_revision}"
        )
    if isinstance(event, TicketAssigned):
        moved = f" (from {event.previous_assignee})" if event.previous_assignee else ""
        return f"to {event.assignee}{moved} by rule {event.rule}"
    if isinstance(event, TicketUpdated):
        parts = [str(event.change)]
        if event.priority:
            parts.append(f"priority {event.priority}")
        if event.text:
            parts.append(f"text {len(event.text)} chars")
        if event.time_spent_minutes:
            parts.append(f"{event.time_spent_minutes} min spent")
        return ", ".join(parts)
    if isinstance(event, SlaArmed):
        return (
            f"{event.priority}: first response by {event.first_response_due.isoformat()}, "
            f"resolution by {event.resolution_due.isoformat()} (generation {event.generation})"
        )
    if isinstance(event, SlaWarning | SlaBreached):
        return f"{event.target} due {event.due_at.isoformat()}"
    if isinstance(event, TicketEscalated):
        return f"level {event.level} ({event.target}): {event.reason}"
    if isinstance(event, NotificationSent):
        return f"{event.trigger} via {event.channel}"
    if isinstance(event, NotificationFailed):
        return f"{event.trigger} via {event.channel} failed after {event.attempts}: {event.reason}"
    return event.type


def trail(events: list[Event]) -> list[AuditLine]:
    """The audit lines of a ticket's events, in stream order."""
    return [
        AuditLine(e.occurred_at, e.type, actor_of(e), summary_of(e), str(e.event_id))
        for e in events
    ]
