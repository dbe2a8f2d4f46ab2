"""The monthly client report, computed from a tenant's event history. Pure: events in, figures out.

The report covers the tickets *received* in the month (in the contract's timezone) and
everything that happened to them up to the moment the history was read: scope mix, SLA kept
per priority, response and resolution times, billable work asked for, approved and the time
spent on it (against the contract's prepaid block, if it has one), and the tickets Opora
opened proactively from monitoring.
"""

import statistics
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from opora_shared.contracts import Contract
from opora_shared.events import (
    Event,
    SlaArmed,
    SlaBreached,
    TicketClassified,
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
)

_APPROVAL = {TicketChange.APPROVED: "approved", TicketChange.DECLINED: "declined"}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class SlaRow(_Model):
    """SLA kept for one priority: tickets with a clock, met, breached, still running."""

    priority: Priority
    tickets: int
    first_response_met: int
    first_response_breached: int
    resolution_met: int
    resolution_breached: int
    median_first_response_min: float | None
    median_resolution_h: float | None

    @property
    def first_response_kept(self) -> float | None:
        """Met / decided (None when nothing is decided yet)."""
        decided = self.first_response_met + self.first_response_breached
        return self.first_response_met / decided if decided else None

    @property
    def resolution_kept(self) -> float | None:
        """Met / decided (None when nothing is decided yet)."""
        decided = self.resolution_met + self.resolution_breached
        return self.resolution_met / decided if decided else None


class BillableItem(_Model):
    """One request outside the contract's included services: who asked, what, the decision."""

    ticket_id: str
    received_at: datetime
    requester: str
    subject: str
    category: Category
    scope: Scope
    decision: str
    """approved, declined or pending."""
    minutes_spent: int


class MonthlyReport(_Model):
    """Everything the client's director reads for one month."""

    tenant: str
    tenant_name: str
    language: Language
    month: str
    timezone: str
    generated_at: datetime
    tickets: int
    resolved: int
    open: int
    by_category: dict[str, int]
    by_scope: dict[str, int]
    by_priority: dict[str, int]
    by_channel: dict[str, int]
    sla: tuple[SlaRow, ...]
    median_first_response_min: float | None
    median_resolution_h: float | None
    billable: tuple[BillableItem, ...]
    billable_minutes_approved: int
    prepaid_hours: float | None
    proactive: int
    """Tickets opened from monitoring alerts, before anyone called."""
    per_day: dict[str, int]

    @property
    def prepaid_hours_used(self) -> float | None:
        """Hours of the prepaid block used by approved billable work."""
        return None if self.prepaid_hours is None else self.billable_minutes_approved / 60

    @property
    def prepaid_hours_left(self) -> float | None:
        """Hours of the prepaid block left (never negative; see ``prepaid_overrun``)."""
        if self.prepaid_hours is None:
            return None
        return max(0.0, self.prepaid_hours - self.billable_minutes_approved / 60)

    @property
    def prepaid_overrun(self) -> float:
        """Hours of approved billable work beyond the prepaid block."""
        if self.prepaid_hours is None:
            return 0.0
        return max(0.0, self.billable_minutes_approved / 60 - self.prepaid_hours)


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    """The first instant of the month and of the next one (UTC), in the contract's timezone."""
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        msg = f"month {month!r} is not YYYY-MM"
        raise ValueError(msg) from None
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    zone = ZoneInfo(timezone)
    start = datetime(first.year, first.month, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(following.year, following.month, 1, tzinfo=zone).astimezone(UTC)
    return start, end


class _Ticket:
    """What the report needs of one ticket, gathered from its events."""

    __slots__ = (
        "breached",
        "classified",
        "decision",
        "first_response_at",
        "minutes",
        "priority",
        "received",
        "resolved_at",
    )

    def __init__(self, received: TicketReceived) -> None:
        self.received = received
        self.classified: TicketClassified | None = None
        self.priority: Priority | None = None
        self.first_response_at: datetime | None = None
        self.resolved_at: datetime | None = None
        self.breached: set[SlaTarget] = set()
        self.decision = "pending"
        self.minutes = 0

    def apply(self, event: Event) -> None:
        if isinstance(event, TicketClassified):
            self.classified = event
            self.priority = self.priority or event.priority
        elif isinstance(event, SlaArmed):
            self.priority = event.priority
        elif isinstance(event, SlaBreached):
            self.breached.add(event.target)
        elif isinstance(event, TicketUpdated):
            self._update(event)

    def _update(self, event: TicketUpdated) -> None:
        self.minutes += event.time_spent_minutes or 0
        if event.change in (TicketChange.ACKNOWLEDGED, TicketChange.REPLIED):
            self.first_response_at = self.first_response_at or event.occurred_at
        elif event.change is TicketChange.RESOLVED:
            self.resolved_at = event.occurred_at
            self.first_response_at = self.first_response_at or event.occurred_at
        elif event.change is TicketChange.REOPENED:
            self.resolved_at = None
        elif event.change is TicketChange.PRIORITY_CHANGED and event.priority:
            self.priority = event.priority
        elif event.change in _APPROVAL:
            self.decision = _APPROVAL[event.change]


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def build_report(
    contract: Contract, month: str, events: Iterable[Event], *, now: datetime
) -> MonthlyReport:
    """The report of one tenant's month from its events (any order; other tenants ignored)."""
    start, end = month_bounds(month, contract.calendar.timezone)
    zone = ZoneInfo(contract.calendar.timezone)
    tickets: dict[str, _Ticket] = {}
    for event in sorted(events, key=lambda e: e.occurred_at):
        if event.tenant != contract.tenant:
            continue
        if isinstance(event, TicketReceived):
            if start <= event.occurred_at < end:
                tickets[event.ticket_id] = _Ticket(event)
        elif event.ticket_id in tickets:
            tickets[event.ticket_id].apply(event)
    rows = []
    for priority in Priority:
        group = [t for t in tickets.values() if t.priority is priority]
        if not group:
            continue
        response = [
            (t.first_response_at - t.received.occurred_at).total_seconds() / 60
            for t in group
            if t.first_response_at
        ]
        resolution = [
            (t.resolved_at - t.received.occurred_at).total_seconds() / 3600
            for t in group
            if t.resolved_at
        ]
        first_breached = sum(SlaTarget.FIRST_RESPONSE in t.breached for t in group)
        resolution_breached = sum(SlaTarget.RESOLUTION in t.breached for t in group)
        rows.append(
            SlaRow(
                priority=priority,
                tickets=len(group),
                first_response_met=sum(
                    t.first_response_at is not None and SlaTarget.FIRST_RESPONSE not in t.breached
                    for t in group
                ),
                first_response_breached=first_breached,
                resolution_met=sum(
                    t.resolved_at is not None and SlaTarget.RESOLUTION not in t.breached
                    for t in group
                ),
                resolution_breached=resolution_breached,
                median_first_response_min=_median(response),
                median_resolution_h=_median(resolution),
            )
        )
    classified = [t.classified for t in tickets.values() if t.classified]
    billable = tuple(
        BillableItem(
            ticket_id=t.received.ticket_id,
            received_at=t.received.occurred_at,
            requester=t.received.requester.email,
            subject=t.received.subject,
            category=t.classified.category,
            scope=t.classified.scope,
            decision=t.decision,
            minutes_spent=t.minutes,
        )
        for t in tickets.values()
        if t.classified and t.classified.scope in (Scope.BILLABLE, Scope.EXCLUDED)
    )
    all_response = [
        (t.first_response_at - t.received.occurred_at).total_seconds() / 60
        for t in tickets.values()
        if t.first_response_at
    ]
    all_resolution = [
        (t.resolved_at - t.received.occurred_at).total_seconds() / 3600
        for t in tickets.values()
        if t.resolved_at
    ]
    per_day: Counter[str] = Counter()
    day = start.astimezone(zone).date()
    last = (end - timedelta(seconds=1)).astimezone(zone).date()
    while day <= last:
        per_day[day.isoformat()] = 0
        day += timedelta(days=1)
    for t in tickets.values():
        per_day[t.received.occurred_at.astimezone(zone).date().isoformat()] += 1
    resolved = sum(t.resolved_at is not None for t in tickets.values())
    return MonthlyReport(
        tenant=contract.tenant,
        tenant_name=contract.name,
        language=contract.language,
        month=month,
        timezone=contract.calendar.timezone,
        generated_at=now,
        tickets=len(tickets),
        resolved=resolved,
        open=len(tickets) - resolved,
        by_category=_ordered(Counter(c.category.value for c in classified), Category),
        by_scope=_ordered(Counter(c.scope.value for c in classified), Scope),
        by_priority=_ordered(
            Counter(t.priority.value for t in tickets.values() if t.priority), Priority
        ),
        by_channel=_ordered(Counter(t.received.channel.value for t in tickets.values()), Channel),
        sla=tuple(rows),
        median_first_response_min=_median(all_response),
        median_resolution_h=_median(all_resolution),
        billable=billable,
        billable_minutes_approved=sum(
            b.minutes_spent for b in billable if b.decision == "approved"
        ),
        prepaid_hours=contract.prepaid_hours_per_month,
        proactive=sum(
            c.kind is Kind.ALERT or c.category is Category.MONITORING for c in classified
        ),
        per_day=dict(sorted(per_day.items())),
    )


def _ordered(counts: Counter[str], vocabulary: Iterable[object]) -> dict[str, int]:
    """Counts in the vocabulary's order, zeros left out."""
    return {str(v): counts[str(v)] for v in vocabulary if counts[str(v)]}
