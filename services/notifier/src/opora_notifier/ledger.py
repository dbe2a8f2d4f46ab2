"""The idempotency record of one notification, and the store the dispatcher keeps it in.

One record per notification id (stable per ticket, trigger, cause and recipient), written
with compare-and-set so that two replicas never both claim one message:

    (none) --claim--> sending --commit--> committing --> sent
                         |                     |
                         +--> retrying <-------+ (the receiver refused: nothing arrived)
                         +--> failed  <--------+ (final refusal, attempts used up, or in doubt
                                                  for a client: at most once)

``sending`` means "about to try, nothing can have arrived yet"; ``committing`` "the message may
be out" (just before SMTP DATA or the HTTP request). A record left in one of them by a crash is
judged when its lease runs out (docs/notifications.md).
"""

from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

from opora_notifier.policy import Admission
from opora_shared.errors import OporaError


class DeliveryState(StrEnum):
    """Where one notification stands."""

    SENDING = "sending"
    """Claimed; nothing can have reached the receiver yet."""
    COMMITTING = "committing"
    """Handed over (or about to be): the message may have arrived."""
    RETRYING = "retrying"
    """The last attempt surely failed; another will follow."""
    SENT = "sent"
    FAILED = "failed"


class Record(BaseModel):
    """The stored state of one notification."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    state: DeliveryState
    attempts: int
    at: AwareDatetime
    """When the state was entered (for sending/committing: the lease starts here)."""
    channel: str
    message_id: str | None = None
    reason: str | None = None


class LedgerConflict(OporaError):
    """Someone else changed the record since we read it (another replica, a recovery)."""


class Ledger(Protocol):
    """Where records and rate windows live (JetStream KV; a dict in unit tests)."""

    async def get(self, notification_id: str) -> tuple[Record | None, int | None]:
        """The record and its revision, or (None, None)."""

    async def put(self, notification_id: str, record: Record, revision: int | None) -> int:
        """Write if the revision still matches (None: only if absent); the new revision."""

    async def admit(
        self, key: str, *, now: datetime, limit: int, period_s: float, urgent: bool
    ) -> Admission:
        """Count one message to a recipient unless their window is full."""
