"""A ticket folded from its events: the read model the API returns. Pure."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from opora_shared.errors import TicketNotFoundError
from opora_shared.events import (
    Event,
    NotificationFailed,
    NotificationSent,
    Requester,
    SlaArmed,
    SlaBreached,
    SlaWarning,
    TicketAssigned,
    TicketClassified,
    TicketEscalated,
    TicketReceived,
    TicketUpdated,
)
from opora_shared.vocabulary import (
    Category,
    Channel,
    Kind,
    Language,
    Priority,
    Scope,
    SlaTarget,
    TicketChange,
    TicketStatus,
)


class Classification(BaseModel):
    """What the classifier said, and why."""

    category: Category
    kind: Kind
    scope: Scope
    priority: Priority
    language: Language
    confidence: float
    reasons: list[str]
    contract_revision: str


class SlaView(BaseModel):
    """The ticket's clocks: deadlines and what happened to them."""

    priority: Priority
    first_response_due: datetime
    resolution_due: datetime
    timezone: str
    state: str
    """running, responded, stopped."""
    first_response_at: datetime | None = None
    warnings: list[SlaTarget] = []
    breaches: list[SlaTarget] = []
    escalation_level: int = 0


class AssigneeView(BaseModel):
    """Who works the ticket, by which routing rule, and why."""

    id: str
    email: str
    team: str | None = None
    rule: str
    reasons: list[str]
    assigned_at: datetime
    previous: str | None = None


Approval = Literal["requested", "approved", "declined"]
"""Where billable or excluded work stands with the client's approver."""

_NEEDS_APPROVAL = (Scope.BILLABLE, Scope.EXCLUDED)


class NotificationView(BaseModel):
    """One notification and its outcome."""

    notification_id: str
    trigger: str
    channel: str
    recipient: str
    outcome: str
    at: datetime
    message_id: str | None = None
    reason: str | None = None


class TicketView(BaseModel):
    """A ticket as its events tell it."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    tenant: str
    status: TicketStatus
    channel: Channel
    requester: Requester
    subject: str
    created_at: datetime
    updated_at: datetime
    classification: Classification | None = None
    sla: SlaView | None = None
    assignee: AssigneeView | None = None
    approval: Approval | None = None
    """requested (billable or excluded, no decision yet), approved, declined; None otherwise."""
    notifications: list[NotificationView] = []
    events: list[dict[str, Any]] = []


_STATUS_AFTER: dict[TicketChange, TicketStatus] = {
    TicketChange.ACKNOWLEDGED: TicketStatus.IN_PROGRESS,
    TicketChange.REPLIED: TicketStatus.IN_PROGRESS,
    TicketChange.CLIENT_REPLIED: TicketStatus.IN_PROGRESS,
    TicketChange.WAITING_ON_CLIENT: TicketStatus.WAITING_ON_CLIENT,
    TicketChange.RESOLVED: TicketStatus.RESOLVED,
    TicketChange.REOPENED: TicketStatus.OPEN,
}


def fold(events: Iterable[Event], *, with_events: bool = True) -> TicketView:
    """Fold a ticket's events, oldest first, into its current view.

    ``with_events=False`` leaves ``TicketView.events`` (the events as JSON, for the API) empty:
    the ticket index and the notifier fold on every event and never show them.
    """
    view: TicketView | None = None
    for event in events:
        if isinstance(event, TicketReceived):
            view = TicketView(
                id=event.ticket_id,
                tenant=event.tenant,
                status=TicketStatus.NEW,
                channel=event.channel,
                requester=event.requester,
                subject=event.subject,
                created_at=event.occurred_at,
                updated_at=event.occurred_at,
            )
        if view is None:
            continue  # events before the ticket's receipt cannot be placed; never expected
        _apply(view, event)
        view.updated_at = max(view.updated_at, event.occurred_at)
        if with_events:
            view.events.append(event.model_dump(mode="json"))
    if view is None:
        msg = "no TicketReceived among the events"
        raise TicketNotFoundError(msg)
    return view


def _apply(view: TicketView, event: Event) -> None:
    if isinstance(event, TicketClassified):
        view.classification = Classification(
            category=event.category,
            kind=event.kind,
            scope=event.scope,
            priority=event.priority,
            language=event.language,
            confidence=event.confidence,
            reasons=list(event.reasons),
            contract_revision=event.contract_revision,
        )
        if view.status is TicketStatus.NEW:
            view.status = TicketStatus.OPEN
        if view.approval in (None, "requested"):
            view.approval = "requested" if event.scope in _NEEDS_APPROVAL else None
    elif isinstance(event, TicketAssigned):
        view.assignee = AssigneeView(
            id=event.assignee,
            email=event.assignee_email,
            team=event.team,
            rule=event.rule,
            reasons=list(event.reasons),
            assigned_at=event.occurred_at,
            previous=event.previous_assignee,
        )
    elif isinstance(event, TicketUpdated):
        if event.change is TicketChange.APPROVED:
            view.approval = "approved"
        elif event.change is TicketChange.DECLINED:
            view.approval = "declined"
        if event.change in _STATUS_AFTER:
            view.status = _STATUS_AFTER[event.change]
        if event.change is TicketChange.PRIORITY_CHANGED and event.priority and view.classification:
            view.classification.priority = event.priority
        if view.sla and event.change in (TicketChange.ACKNOWLEDGED, TicketChange.REPLIED):
            view.sla.first_response_at = view.sla.first_response_at or event.occurred_at
            view.sla.state = "responded"
        if view.sla and event.change is TicketChange.RESOLVED:
            view.sla.state = "stopped"
    elif isinstance(event, SlaArmed) and view.sla is not None:
        # re-armed (paused, resumed, priority changed...): new deadlines, same history
        view.sla.priority = event.priority
        view.sla.first_response_due = event.first_response_due
        view.sla.resolution_due = event.resolution_due
    elif isinstance(event, SlaArmed):
        view.sla = SlaView(
            priority=event.priority,
            first_response_due=event.first_response_due,
            resolution_due=event.resolution_due,
            timezone=event.timezone,
            state="running",
        )
    elif isinstance(event, SlaWarning) and view.sla:
        view.sla.warnings.append(event.target)
    elif isinstance(event, SlaBreached) and view.sla:
        view.sla.breaches.append(event.target)
    elif isinstance(event, TicketEscalated) and view.sla:
        view.sla.escalation_level = max(view.sla.escalation_level, event.level)
    elif isinstance(event, NotificationSent | NotificationFailed):
        view.notifications.append(
            NotificationView(
                notification_id=event.notification_id,
                trigger=event.trigger,
                channel=event.channel,
                recipient=event.recipient,
                outcome="sent" if isinstance(event, NotificationSent) else "failed",
                at=event.occurred_at,
                message_id=getattr(event, "message_id", None),
                reason=getattr(event, "reason", None),
            )
        )
