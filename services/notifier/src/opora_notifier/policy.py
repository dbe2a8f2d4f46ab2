"""When to send: quiet hours, per-recipient rate limits and retry back-off. Pure.

- Quiet hours: a non-urgent alert to a team member waits until their shift starts (their
  calendar in the team file); urgent ones (P1/P2) never wait, and people without a shift
  (the lead, the account manager, outside addresses) are never held.
- Rate limit: at most ``limit`` messages per recipient and medium in a sliding ``period``;
  the next one waits until the oldest leaves the window (urgent ones go anyway, and count).
- Back-off: exponential with jitter, capped; a server's own hint (Retry-After) is honoured.

Instants are arguments; nothing here reads the clock or does I/O.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from opora_notifier.notices import Audience, Recipient
from opora_shared.business_hours import BusinessCalendar
from opora_shared.contracts import Calendar


@lru_cache(maxsize=64)
def _calendar(serialised: str) -> BusinessCalendar:
    return BusinessCalendar.from_contract(Calendar.model_validate_json(serialised))


def quiet_until(recipient: Recipient, *, urgent: bool, now: datetime) -> datetime | None:
    """When a held alert may go (the start of the recipient's next shift), or None: now."""
    if urgent or recipient.audience is not Audience.TEAM or recipient.shift is None:
        return None
    calendar = _calendar(recipient.shift.model_dump_json())
    if calendar.is_working(now):
        return None
    return calendar.next_working(now)


@dataclass(frozen=True, slots=True)
class Admission:
    """A rate-limit decision and the window to store."""

    admitted: bool
    window: tuple[datetime, ...]
    """Send times inside the period, oldest first, including this one when admitted."""
    retry_at: datetime | None = None
    """When a refused message may try again."""


def admit(
    window: Sequence[datetime],
    *,
    now: datetime,
    limit: int,
    period: timedelta,
    urgent: bool = False,
) -> Admission:
    """Admit one more message to a recipient unless ``limit`` were sent within ``period``."""
    recent = tuple(sorted(t for t in window if now - t < period))
    if limit <= 0:
        return Admission(True, recent)
    if len(recent) < limit or urgent:
        return Admission(True, (*recent, now)[-max(limit, 1) :])
    return Admission(False, recent, recent[-limit] + period)


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: random.Random,
    hint: float | None = None,
) -> float:
    """Seconds before try ``attempt + 1``: base x 2^(attempt-1) capped, with half of it jittered.

    "Equal jitter": the delay is between half and all of the exponential step, so retries
    from many notifications spread out but never come back at once. A server's hint
    (HTTP Retry-After, Telegram's retry_after) is a floor, still capped.
    """
    step = min(cap, base * float(2 ** max(0, attempt - 1)))
    delay = step / 2 + rng.uniform(0, step / 2)
    if hint is not None:
        delay = max(delay, min(cap, hint))
    return delay
