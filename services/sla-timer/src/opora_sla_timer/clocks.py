"""A ticket's SLA clocks as a pure state machine: arm, stop, pause, resume, re-arm, fire.

The state is a snapshot: the contract's policy for the ticket's priority is frozen onto it when
it is armed, so a later contract edit does not move running deadlines. Each clock carries a
generation, bumped when it is re-armed (priority change, reopen); a firing of an older
generation, or one whose deadline has since moved later, is stale and dropped. Each
(clock, kind, generation) fires at most once: the state records what fired. Pure: time, the
business calendar and the contract are arguments.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

from opora_shared.contracts import Contract
from opora_shared.vocabulary import Priority, SlaTarget, TicketChange

STALE_TOLERANCE = timedelta(seconds=1)
"""A firing this much before the clock's current deadline is stale (the deadline moved)."""


class TimerKind(StrEnum):
    """What a timer announces when it falls due."""

    WARNING = "warning"
    BREACH = "breach"


class Timeline(Protocol):
    """Business-time arithmetic of one contract (``BusinessCalendar`` satisfies it)."""

    def deadline(self, start: datetime, duration: timedelta, *, round_the_clock: bool) -> datetime:
        """``duration`` of business time after ``start``."""
        ...

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants."""
        ...


class Clock(BaseModel):
    """One running target: its deadline, warning time, pause and stop."""

    model_config = ConfigDict(extra="ignore")

    target: SlaTarget
    started_at: AwareDatetime
    duration_s: float
    due: AwareDatetime
    warn_due: AwareDatetime
    generation: int = 1
    paused_since: AwareDatetime | None = None
    stopped_at: AwareDatetime | None = None
    paused_s: float = 0.0
    """Business seconds spent paused so far (waiting on the client)."""

    @property
    def running(self) -> bool:
        """Neither stopped nor paused."""
        return self.stopped_at is None and self.paused_since is None


class SlaState(BaseModel):
    """A ticket's clocks and what they have fired."""

    model_config = ConfigDict(extra="ignore")

    tenant: str
    ticket_id: str
    priority: Priority
    received_at: AwareDatetime
    contract_revision: str
    round_the_clock: bool
    warn_at: float
    timezone: str
    clocks: dict[SlaTarget, Clock]
    fired: list[str] = []
    escalation_level: int = 0
    version: int = 1
    """Bumped on every change of deadlines; the SlaArmed generation."""

    def fired_key(self, target: SlaTarget, kind: TimerKind) -> str:
        """The record that this clock's timer of this kind has fired in this generation."""
        return f"{target}:{kind}:{self.clocks[target].generation}"


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer that should be scheduled: when, for which clock and kind, which generation."""

    target: SlaTarget
    kind: TimerKind
    due: datetime
    generation: int


@dataclass(frozen=True, slots=True)
class Escalation:
    """Who hears about a breach, and why."""

    level: int
    notify: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Firing:
    """What a timer that fell due means: the event to emit and the escalation, if any."""

    target: SlaTarget
    kind: TimerKind
    due: datetime
    late_by: timedelta
    escalation: Escalation | None


def _clock(
    target: SlaTarget,
    contract: Contract,
    priority: Priority,
    start: datetime,
    timeline: Timeline,
    generation: int,
) -> Clock:
    duration = contract.target(target.value, priority)
    rtc = priority in contract.sla.round_the_clock
    return Clock(
        target=target,
        started_at=start,
        duration_s=duration.total_seconds(),
        due=timeline.deadline(start, duration, round_the_clock=rtc),
        warn_due=timeline.deadline(start, duration * contract.sla.warn_at, round_the_clock=rtc),
        generation=generation,
    )


def arm(
    contract: Contract,
    *,
    ticket_id: str,
    priority: Priority,
    received_at: datetime,
    timeline: Timeline,
) -> SlaState:
    """Both clocks of a newly classified ticket, from the contract's targets for its priority."""
    return SlaState(
        tenant=contract.tenant,
        ticket_id=ticket_id,
        priority=priority,
        received_at=received_at,
        contract_revision=contract.revision,
        round_the_clock=priority in contract.sla.round_the_clock,
        warn_at=contract.sla.warn_at,
        timezone=contract.calendar.timezone,
        clocks={
            target: _clock(target, contract, priority, received_at, timeline, 1)
            for target in SlaTarget
        },
    )


def apply(
    state: SlaState,
    change: TicketChange,
    at: datetime,
    *,
    contract: Contract,
    timeline: Timeline,
    priority: Priority | None = None,
) -> SlaState:
    """The state after a ticket update (a copy; the input is not changed)."""
    state = state.model_copy(deep=True)
    first, resolution = state.clocks[SlaTarget.FIRST_RESPONSE], state.clocks[SlaTarget.RESOLUTION]
    if change in (TicketChange.ACKNOWLEDGED, TicketChange.REPLIED):
        first.stopped_at = first.stopped_at or at
        _resume(resolution, at, state, timeline)
    elif change is TicketChange.WAITING_ON_CLIENT:
        if resolution.stopped_at is None and resolution.paused_since is None:
            resolution.paused_since = at
    elif change is TicketChange.CLIENT_REPLIED:
        _resume(resolution, at, state, timeline)
    elif change is TicketChange.RESOLVED:
        for clock in state.clocks.values():
            clock.stopped_at = clock.stopped_at or at
            clock.paused_since = None
    elif change is TicketChange.REOPENED:
        fresh = _clock(
            SlaTarget.RESOLUTION, contract, state.priority, at, timeline, resolution.generation + 1
        )
        state.clocks[SlaTarget.RESOLUTION] = fresh
    elif change is TicketChange.PRIORITY_CHANGED and priority and priority != state.priority:
        state.priority = priority
        state.round_the_clock = priority in contract.sla.round_the_clock
        for target, old in list(state.clocks.items()):
            new = _clock(
                target, contract, priority, state.received_at, timeline, old.generation + 1
            )
            new.stopped_at, new.paused_since, new.paused_s = (
                old.stopped_at,
                old.paused_since,
                old.paused_s,
            )
            if old.paused_s:
                new = _shifted(new, timedelta(seconds=old.paused_s), state, timeline)
            state.clocks[target] = new
    else:
        return state
    state.version += 1
    return state


def _resume(clock: Clock, at: datetime, state: SlaState, timeline: Timeline) -> None:
    if clock.paused_since is None or clock.stopped_at is not None:
        return
    paused = (
        at - clock.paused_since
        if state.round_the_clock
        else timeline.between(clock.paused_since, at)
    )
    clock.paused_since = None
    clock.paused_s += paused.total_seconds()
    moved = _shifted(clock, paused, state, timeline)
    clock.due, clock.warn_due = moved.due, moved.warn_due


def _shifted(clock: Clock, by: timedelta, state: SlaState, timeline: Timeline) -> Clock:
    """The clock with its deadlines moved later by ``by`` of business time."""
    rtc = state.round_the_clock
    return clock.model_copy(
        update={
            "due": timeline.deadline(clock.due, by, round_the_clock=rtc),
            "warn_due": timeline.deadline(clock.warn_due, by, round_the_clock=rtc),
        }
    )


def met(before: SlaState | None, after: SlaState) -> list[SlaTarget]:
    """The clocks that stopped in this change without having breached: targets met."""
    found = []
    for target, clock in after.clocks.items():
        previous = before.clocks.get(target) if before else None
        if clock.stopped_at is None or (previous is not None and previous.stopped_at is not None):
            continue
        if not any(key.startswith(f"{target}:{TimerKind.BREACH}:") for key in after.fired):
            found.append(target)
    return found


def timers(state: SlaState) -> list[Timer]:
    """Timers that must be scheduled now (the others must be cancelled)."""
    pending = []
    for target, clock in state.clocks.items():
        if not clock.running:
            continue
        for kind, due in ((TimerKind.WARNING, clock.warn_due), (TimerKind.BREACH, clock.due)):
            if state.fired_key(target, kind) not in state.fired:
                pending.append(Timer(target, kind, due, clock.generation))
    return pending


def fire(
    state: SlaState,
    target: SlaTarget,
    kind: TimerKind,
    generation: int,
    now: datetime,
    contract: Contract | None,
) -> tuple[Firing | None, SlaState]:
    """A timer fell due: what to emit (None when stale or already fired) and the new state."""
    clock = state.clocks.get(target)
    if clock is None or clock.generation != generation or not clock.running:
        return None, state
    key = state.fired_key(target, kind)
    due = clock.warn_due if kind is TimerKind.WARNING else clock.due
    if key in state.fired or now < due - STALE_TOLERANCE:
        return None, state
    state = state.model_copy(deep=True)
    state.fired.append(key)
    escalation = None
    if kind is TimerKind.BREACH:
        escalation = escalation_for(contract, target, state.priority)
        if escalation is not None:
            state.escalation_level = max(state.escalation_level, escalation.level)
    return Firing(target, kind, due, max(timedelta(), now - due), escalation), state


def escalation_for(
    contract: Contract | None, target: SlaTarget, priority: Priority
) -> Escalation | None:
    """The contract's escalation level for a breach: team lead on a first-response breach,
    account manager on a resolution breach or any P1 breach."""
    if contract is None:
        return None
    if priority is Priority.P1 or target is SlaTarget.RESOLUTION:
        wanted, reason = (
            "resolution_breach",
            ("P1 breach" if priority is Priority.P1 else "resolution breach"),
        )
    else:
        wanted, reason = "first_response_breach", "first-response breach"
    for level in sorted(contract.escalation, key=lambda lvl: lvl.level):
        if level.when.startswith(wanted):
            return Escalation(level.level, level.notify, f"{reason} of {target}")
    return None
