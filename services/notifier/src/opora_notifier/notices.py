"""What the notifier sends: triggers, audiences, recipients and notices. Pure data.

A ``Notice`` is one message to one recipient on one medium because of one trigger. Its
notification id is derived from (ticket, trigger, cause, recipient), so whoever plans it again
(a redelivery, another replica) gets the same id, and the idempotency ledger finds it. Nothing
here does I/O or knows how a notice is rendered or sent.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from opora_shared.contracts import Calendar
from opora_shared.events import derive_id
from opora_shared.vocabulary import Language


class Trigger(StrEnum):
    """Why a notice is sent; each has its templates under ``templates/<language>/``."""

    ACKNOWLEDGEMENT = "acknowledgement"
    """To the requester: the ticket is logged, its number, verdict and first-response deadline."""
    APPROVAL_REQUEST = "approval_request"
    """To the contract's approver: billable or excluded work, with approve and decline links."""
    APPROVAL_DECIDED = "approval_decided"
    """To the requester: the approver approved (work starts) or declined (no work)."""
    REPLY = "reply"
    """To the requester: an engineer's answer, from the support address, threaded."""
    WAITING_ON_CLIENT = "waiting_on_client"
    """To the requester: the provider needs something from them (the engineer's question)."""
    RESOLVED = "resolved"
    """To the requester: the ticket is resolved, with the engineer's note."""
    PAGE = "page"
    """To the on-duty engineer: a new P1 or P2 ticket, at once."""
    NEEDS_REVIEW = "needs_review"
    """To the team lead: the classifier was not sure, or the sender is unknown."""
    SLA_WARNING = "sla_warning"
    """To the assignee (else on-duty): a deadline is near."""
    SLA_BREACHED = "sla_breached"
    """To the assignee (else on-duty): a deadline was missed."""
    ESCALATED = "escalated"
    """To the escalation level's people: the ticket went up the chain."""
    APPROVAL_OUTCOME = "approval_outcome"
    """To the assignee (else on-duty): the client's approver decided; start or drop the work."""
    DIGEST = "digest"
    """Once a day, to each engineer (or the lead): a tenant's open low-priority tickets (P3/P4)
    of theirs; the one notice about no one ticket (``ticket_id`` is empty)."""


CLIENT_TRIGGERS = frozenset(
    {
        Trigger.ACKNOWLEDGEMENT,
        Trigger.APPROVAL_REQUEST,
        Trigger.APPROVAL_DECIDED,
        Trigger.REPLY,
        Trigger.WAITING_ON_CLIENT,
        Trigger.RESOLVED,
    }
)
TEAM_TRIGGERS = frozenset(set(Trigger) - CLIENT_TRIGGERS)


class Audience(StrEnum):
    """Who reads it, which decides the delivery guarantee when a send is interrupted."""

    CLIENT = "client"
    """Clients and approvers: at most once when in doubt (never a second client email)."""
    TEAM = "team"
    """The provider's people: at least once when in doubt (a duplicate beats a missed page)."""
    INTEGRATION = "integration"
    """The generic webhook: at least once; receivers deduplicate by notification id."""


class Medium(StrEnum):
    """How a notice travels."""

    EMAIL = "email"
    TELEGRAM = "telegram"
    SLACK = "slack"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class Recipient:
    """One address on one medium, with the language to write in and when they work."""

    medium: Medium
    address: str
    """A mail address, a Telegram chat id, a Slack/Mattermost channel, or ``default`` (webhook)."""
    audience: Audience
    language: Language
    name: str | None = None
    shift: Calendar | None = None
    """A team member's working calendar (quiet hours); None: never held."""

    @property
    def key(self) -> str:
        """The recipient as it enters notification ids and events: the address for mail."""
        if self.medium is Medium.EMAIL:
            return self.address.strip().lower()
        return f"{self.medium.value}:{self.address}"


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to send: trigger, ticket, recipient and the template's variables."""

    trigger: Trigger
    tenant: str
    ticket_id: str
    """The ticket it is about; empty for the daily digest (about many)."""
    recipient: Recipient
    context: Mapping[str, Any]
    """The template's variables (complete: templates render with StrictUndefined)."""
    occurred_at: datetime
    """When its cause happened; a notice far older than now (a replay) is not sent."""
    cause: str = ""
    """Empty for once-per-ticket triggers; otherwise the causing event's id."""
    urgent: bool = False
    """P1/P2 engineer alerts: never held by quiet hours or rate limits."""
    references: tuple[str, ...] = field(default=())
    """Message-IDs this mail follows, oldest first; In-Reply-To is the last."""
    automatic: bool = True
    """Written by Opora (Auto-Submitted, X-Auto-Response-Suppress); False for an engineer's
    own words relayed to the client."""

    @property
    def notification_id(self) -> str:
        """Stable per (ticket, trigger, cause, recipient)."""
        parts = [self.ticket_id, self.trigger.value]
        if self.cause:
            parts.append(self.cause)
        parts.append(self.recipient.key)
        return str(derive_id(*parts))
