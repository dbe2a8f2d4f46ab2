"""Who hears what, when something happens to a ticket. Pure.

Each ``Planner`` method takes a trigger event and what the notifier knows of the ticket (its
folded events, the tenant's contract, the team) and returns the notices to send, in order:
the client's first, so their acknowledgement is always the ticket's first notification. It
never sends, reads the clock or touches NATS; the caller passes the instants.

- first ``SlaArmed`` (or ``TicketClassified`` of the unknown tenant): the acknowledgement to
  the requester; an approval request to the approver (billable, excluded); a review request
  to the lead (needs_review, unknown sender); a page to on-duty (P1/P2);
- a later ``SlaArmed`` at P1/P2: the page (a ticket raised to P1/P2), once per ticket;
- ``SlaWarning``, ``SlaBreached``: the assignee, else on-duty;
- ``TicketEscalated``: the level's people (addresses, or roles: lead, account_manager,
  on_duty);
- ``TicketUpdated``: an engineer's reply (with text) relayed to the requester; waiting on the
  client (with the question); resolved; approved or declined (requester and assignee);
- the daily digest (``digest``): each person's open low-priority tickets of a tenant.

A ticket an integration raised (channel ``integration``, requester ``alertmanager@vector``)
has no client to write to: it gets no acknowledgement and no status notices; its engineer
alerts and the approver's mail are as for any ticket.

Engineer alerts also go to each person's chat handles (Telegram, Slack/Mattermost) and to the
generic webhook, when the deployment has them.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from opora_notifier.digest import DigestBundle
from opora_notifier.notices import Audience, Medium, Notice, Recipient, Trigger
from opora_notifier.rendering import format_day, format_due, format_duration, one_line
from opora_shared.approvals import ApprovalClaim, Decision
from opora_shared.contracts import Contract
from opora_shared.events import (
    Event,
    SlaArmed,
    SlaBreached,
    SlaWarning,
    TicketClassified,
    TicketEscalated,
    TicketReceived,
    TicketUpdated,
    derive_id,
)
from opora_shared.mail_ids import outbound_message_id
from opora_shared.status_links import status_url
from opora_shared.team import Engineer, Person, Team
from opora_shared.ticket_index import TicketSummary
from opora_shared.tickets import TicketView, fold
from opora_shared.vocabulary import Channel, Language, Priority, Scope, TicketChange

URGENT = frozenset({Priority.P1, Priority.P2})
"""Priorities whose engineer alerts never wait (quiet hours, rate limits)."""

_NEEDS_APPROVAL = frozenset({Scope.BILLABLE, Scope.EXCLUDED})
_ROLES = {"lead": "lead", "team_lead": "lead", "account_manager": "am", "am": "am"}


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What the notifier knows of a ticket: its folded view, the request text, its mail id."""

    view: TicketView
    body: str
    client_message_id: str | None

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> "TicketFacts":
        """Fold a ticket's events (oldest first); TicketNotFoundError without a receipt."""
        events = list(events)
        view = fold(events, with_events=False)
        received = next(e for e in events if isinstance(e, TicketReceived))
        return cls(view=view, body=received.body, client_message_id=received.message_id)

    @property
    def requester_reads_mail(self) -> bool:
        """False for a ticket an integration raised (``alertmanager@vector``): its requester
        is a tool, so client mail (acknowledgement, status notices) would go nowhere."""
        return self.view.channel is not Channel.INTEGRATION

    @property
    def priority(self) -> Priority | None:
        """The ticket's current priority (as re-armed), if classified."""
        if self.view.sla is not None:
            return self.view.sla.priority
        return self.view.classification.priority if self.view.classification else None


@dataclass(frozen=True, slots=True)
class Reach:
    """Which optional channels the deployment has configured."""

    telegram: bool = False
    slack: bool = False
    webhook: bool = False


@dataclass(frozen=True, slots=True)
class Links:
    """How to build the links and ids notices carry."""

    public_url: str
    ticket_url: str
    """Engineers' link to a ticket: a template with {public_url}, {tenant} and {ticket_id};
    empty: the signed status page."""
    mail_domain: str
    sign: Callable[[ApprovalClaim], str] | None = None
    """Makes an approval token; None: no approval requests (no signing key)."""
    status_token: Callable[[str, str], str] | None = None
    """Makes a status-page token for (tenant, ticket id)."""
    approval_valid_s: int = 7 * 24 * 3600

    def status(self, tenant: str, ticket_id: str) -> str:
        """The ticket's signed status page (what the client may see)."""
        base = self.public_url.rstrip("/")
        if self.status_token is not None:
            return status_url(base, self.status_token(tenant, ticket_id))
        return f"{base}/v1/tickets/{ticket_id}"

    def open(self, tenant: str, ticket_id: str) -> str:
        """Where an engineer opens the ticket: the configured page, else the status page."""
        if self.ticket_url:
            base = self.public_url.rstrip("/")
            return self.ticket_url.format(public_url=base, tenant=tenant, ticket_id=ticket_id)
        return self.status(tenant, ticket_id)

    def approval(self, claim: ApprovalClaim) -> str:
        """A signed, expiring approval link (the intake answers it)."""
        assert self.sign is not None  # noqa: S101 - callers check
        return f"{self.public_url.rstrip('/')}/v1/approvals/{self.sign(claim)}"

    def thread_root(self, ticket_id: str) -> str:
        """A Message-ID every team alert of a ticket refers to, so mail clients thread them."""
        return outbound_message_id(ticket_id, "thread", self.mail_domain)


class Planner:
    """Plans notices for one trigger event, from the team, channels and links in use."""

    def __init__(self, *, team: Team | None, reach: Reach, links: Links) -> None:
        self.team = team
        self.reach = reach
        self.links = links

    # -- triggers -------------------------------------------------------------------------

    def armed(self, facts: TicketFacts, contract: Contract | None, event: SlaArmed) -> list[Notice]:
        """The clocks started (generation 1: a new ticket) or moved (a later generation)."""
        notices: list[Notice] = []
        if event.generation == 1:
            notices += self.acknowledgement(facts, contract, event.first_response_due, event)
            notices += self.approval_request(facts, contract, event.occurred_at)
            notices += self.review(facts, contract, event.occurred_at)
        if event.priority in URGENT:
            notices += self.page(facts, contract, event)
        return notices

    def unknown_sender(self, facts: TicketFacts, event: TicketClassified) -> list[Notice]:
        """A ticket from a sender no contract knows: acknowledged without a deadline, reviewed."""
        return [
            *self.acknowledgement(facts, None, None, event),
            *self.review(facts, None, event.occurred_at),
        ]

    def acknowledgement(
        self,
        facts: TicketFacts,
        contract: Contract | None,
        due: datetime | None,
        event: Event,
    ) -> list[Notice]:
        """The client's acknowledgement: number, request, verdict, real deadline."""
        if not facts.requester_reads_mail:
            return []
        view = facts.view
        scope = view.classification.scope if view.classification else Scope.NEEDS_REVIEW
        context = {
            "known_sender": contract is not None,
            "approver_asked": bool(
                contract is not None and scope in _NEEDS_APPROVAL and self.links.sign
            ),
        }
        return [
            self._client_notice(
                Trigger.ACKNOWLEDGEMENT,
                facts,
                contract,
                event.occurred_at,
                context,
                references=self._client_thread(facts, with_ack=False),
                due=due,
            )
        ]

    def approval_request(
        self, facts: TicketFacts, contract: Contract | None, at: datetime
    ) -> list[Notice]:
        """Billable or excluded work: the approver gets approve and decline links."""
        view = facts.view
        if (
            contract is None
            or view.classification is None
            or view.classification.scope not in _NEEDS_APPROVAL
            or self.links.sign is None
        ):
            return []
        approver = Recipient(
            Medium.EMAIL, contract.approver, Audience.CLIENT, contract.language, name=None
        )

        def link(decision: Decision) -> str:
            claim = ApprovalClaim(view.tenant, view.id, contract.approver, decision)
            return self.links.approval(claim)

        context = {
            "approve_url": link("approve"),
            "decline_url": link("decline"),
            "valid_days": max(1, self.links.approval_valid_s // 86400),
        }
        return [
            Notice(
                trigger=Trigger.APPROVAL_REQUEST,
                tenant=view.tenant,
                ticket_id=view.id,
                recipient=approver,
                context=self._context(facts, contract, approver.language, context),
                occurred_at=at,
            )
        ]

    def review(self, facts: TicketFacts, contract: Contract | None, at: datetime) -> list[Notice]:
        """The team lead reviews tickets the classifier was unsure of, and unknown senders."""
        view = facts.view
        unsure = view.classification is None or view.classification.scope is Scope.NEEDS_REVIEW
        if self.team is None or (contract is not None and not unsure):
            return []
        confidence = view.classification.confidence if view.classification else 0.0
        extra = {"known_sender": contract is not None, "confidence": round(confidence * 100)}
        return self._team_notices(
            Trigger.NEEDS_REVIEW, facts, contract, [self.team.lead], at, extra, urgent=False
        )

    def page(self, facts: TicketFacts, contract: Contract | None, event: SlaArmed) -> list[Notice]:
        """A new P1/P2 pages the on-duty engineer at once (once per ticket)."""
        if self.team is None or contract is None:
            return []
        return self._team_notices(
            Trigger.PAGE,
            facts,
            contract,
            [self.team.duty()],
            event.occurred_at,
            {},
            urgent=True,
            due=event.first_response_due,
        )

    def sla_warning(
        self, facts: TicketFacts, contract: Contract | None, event: SlaWarning
    ) -> list[Notice]:
        """A deadline is near: the assignee (else on-duty) hears, in their shift unless P1/P2."""
        extra = {
            "target": event.target.value,
            "due": self._due(event.due_at, contract, facts),
            "left": format_duration(event.due_at - event.occurred_at, self._lang(facts, contract)),
        }
        return self._owner_alert(Trigger.SLA_WARNING, facts, contract, event, extra)

    def sla_breached(
        self, facts: TicketFacts, contract: Contract | None, event: SlaBreached
    ) -> list[Notice]:
        """A deadline was missed: the assignee (else on-duty) hears."""
        extra = {
            "target": event.target.value,
            "due": self._due(event.due_at, contract, facts),
            "late": format_duration(
                max(timedelta(), event.occurred_at - event.due_at), self._lang(facts, contract)
            ),
        }
        return self._owner_alert(Trigger.SLA_BREACHED, facts, contract, event, extra)

    def escalated(
        self, facts: TicketFacts, contract: Contract | None, event: TicketEscalated
    ) -> list[Notice]:
        """The escalation level's people hear (addresses, or roles of the team file)."""
        people = [self._person(entry) for entry in event.notify]
        extra = {"level": event.level, "target": event.target.value, "reason": event.reason}
        return self._team_notices(
            Trigger.ESCALATED,
            facts,
            contract,
            [p for p in people if p is not None],
            event.occurred_at,
            extra,
            urgent=facts.priority in URGENT,
            cause=str(event.event_id),
        )

    def updated(
        self, facts: TicketFacts, contract: Contract | None, event: TicketUpdated
    ) -> list[Notice]:
        """Status changes that matter to the client, and an engineer's answer.

        A ticket raised by an integration has no one to tell: only the approval's outcome
        still reaches the assignee.
        """
        text = (event.text or "").strip()
        change = event.change
        client = facts.requester_reads_mail
        if not client and change not in (TicketChange.APPROVED, TicketChange.DECLINED):
            return []
        if change is TicketChange.REPLIED and event.actor.kind == "engineer" and text:
            return [self._update(Trigger.REPLY, facts, contract, event, text, automatic=False)]
        if change is TicketChange.WAITING_ON_CLIENT and text:
            return [self._update(Trigger.WAITING_ON_CLIENT, facts, contract, event, text)]
        if change is TicketChange.RESOLVED:
            return [self._update(Trigger.RESOLVED, facts, contract, event, text or None)]
        if change in (TicketChange.APPROVED, TicketChange.DECLINED):
            decided = {"decision": "approved" if change is TicketChange.APPROVED else "declined"}
            told = [
                self._client_notice(
                    Trigger.APPROVAL_DECIDED,
                    facts,
                    contract,
                    event.occurred_at,
                    decided,
                    references=self._client_thread(facts),
                )
            ]
            team = self._owner_alert(
                Trigger.APPROVAL_OUTCOME, facts, contract, event, decided, cause=""
            )
            return [*(told if client else []), *team]
        return []

    def digest(
        self, contract: Contract, found: list[DigestBundle], day: date, at: datetime
    ) -> list[Notice]:
        """The day's digest of open low-priority tickets, one per person (mail and chat).

        Its notification id is derived from (tenant, day, recipient): sent once per day
        however often the scan plans it. Not held by quiet hours: it goes at the contract's
        time, on its business days.
        """
        if self.team is None:
            return []
        timezone = contract.calendar.timezone
        notices: list[Notice] = []
        for bundle in found:
            for recipient in self._reach(bundle.person, contract.language):
                recipient = replace(recipient, shift=None)
                language = recipient.language
                tickets = [self._digest_line(s, contract, at, language) for s in bundle.tickets]
                context = {
                    "digest": {
                        "tenant": contract.tenant,
                        "tenant_name": contract.name,
                        "day": format_day(day, language),
                        "count": len(tickets),
                        "everyone": bundle.everyone,
                        "priorities": ", ".join(
                            p.value
                            for p in sorted({s.priority for s in bundle.tickets if s.priority})
                        ),
                        "timezone": timezone,
                    },
                    "tickets": tickets,
                }
                notices.append(
                    Notice(
                        trigger=Trigger.DIGEST,
                        tenant=contract.tenant,
                        ticket_id="",
                        recipient=recipient,
                        context=context,
                        occurred_at=at,
                        cause=f"{contract.tenant}:{day.isoformat()}",
                    )
                )
        return notices

    def _digest_line(
        self, summary: TicketSummary, contract: Contract, at: datetime, language: Language
    ) -> dict[str, Any]:
        """One ticket as a digest lists it (every value defined: StrictUndefined)."""
        timezone = contract.calendar.timezone
        person = self.team.engineer(summary.assignee) if self.team and summary.assignee else None
        return {
            "id": summary.id,
            "subject": one_line(summary.subject, 120),
            "priority": summary.priority.value if summary.priority else "",
            "status": summary.status.value,
            "assignee": (person.name if person else None) or summary.assignee or "",
            "age": format_duration(at - summary.created_at, language),
            "resolution_due": (
                format_due(summary.resolution_due, timezone, language)
                if summary.resolution_due
                else ""
            ),
            "breached": summary.breached,
            "open_url": self.links.open(summary.tenant, summary.id),
        }

    # -- building blocks ------------------------------------------------------------------

    def _update(
        self,
        trigger: Trigger,
        facts: TicketFacts,
        contract: Contract | None,
        event: TicketUpdated,
        text: str | None,
        *,
        automatic: bool = True,
    ) -> Notice:
        return self._client_notice(
            trigger,
            facts,
            contract,
            event.occurred_at,
            {"text": text},
            references=self._client_thread(facts),
            cause=str(event.event_id),
            automatic=automatic,
        )

    def _client_notice(
        self,
        trigger: Trigger,
        facts: TicketFacts,
        contract: Contract | None,
        at: datetime,
        extra: dict[str, Any],
        *,
        references: tuple[str, ...],
        cause: str = "",
        automatic: bool = True,
        due: datetime | None = None,
    ) -> Notice:
        view = facts.view
        language = self._lang(facts, contract)
        recipient = Recipient(
            Medium.EMAIL, view.requester.email, Audience.CLIENT, language, view.requester.name
        )
        return Notice(
            trigger=trigger,
            tenant=view.tenant,
            ticket_id=view.id,
            recipient=recipient,
            context=self._context(facts, contract, language, extra, due=due),
            occurred_at=at,
            cause=cause,
            references=references,
            automatic=automatic,
        )

    def _owner_alert(
        self,
        trigger: Trigger,
        facts: TicketFacts,
        contract: Contract | None,
        event: Event,
        extra: dict[str, Any],
        *,
        cause: str | None = None,
    ) -> list[Notice]:
        if self.team is None:
            return []
        return self._team_notices(
            trigger,
            facts,
            contract,
            [self._owner(facts)],
            event.occurred_at,
            extra,
            urgent=facts.priority in URGENT,
            cause=str(event.event_id) if cause is None else cause,
        )

    def _team_notices(
        self,
        trigger: Trigger,
        facts: TicketFacts,
        contract: Contract | None,
        people: list[Engineer | Person | str],
        at: datetime,
        extra: dict[str, Any],
        *,
        urgent: bool,
        cause: str = "",
        due: datetime | None = None,
    ) -> list[Notice]:
        view = facts.view
        fallback = contract.language if contract else Language.RU
        recipients: list[Recipient] = []
        for person in people:
            recipients += self._reach(person, fallback)
        if self.reach.webhook and recipients:
            recipients.append(
                Recipient(Medium.WEBHOOK, "default", Audience.INTEGRATION, Language.EN)
            )
        seen: set[str] = set()
        notices = []
        for recipient in recipients:
            if recipient.key in seen:
                continue
            seen.add(recipient.key)
            notices.append(
                Notice(
                    trigger=trigger,
                    tenant=view.tenant,
                    ticket_id=view.id,
                    recipient=recipient,
                    context=self._context(facts, contract, recipient.language, extra, due=due),
                    occurred_at=at,
                    cause=cause,
                    urgent=urgent,
                    references=(self.links.thread_root(view.id),),
                )
            )
        return notices

    def _reach(self, person: Engineer | Person | str, fallback: Language) -> list[Recipient]:
        """Every address of a person: mail always, chat handles when the channel exists."""
        if isinstance(person, str):
            return [Recipient(Medium.EMAIL, person, Audience.TEAM, fallback)]
        shift = None
        if isinstance(person, Engineer) and self.team is not None:
            shift = self.team.shifts.get(person.shift)
        found = [
            Recipient(
                Medium.EMAIL, person.email, Audience.TEAM, person.language, person.name, shift
            )
        ]
        if self.reach.telegram and person.chat.telegram_chat_id:
            found.append(
                Recipient(
                    Medium.TELEGRAM,
                    person.chat.telegram_chat_id,
                    Audience.TEAM,
                    person.language,
                    person.name,
                    shift,
                )
            )
        if self.reach.slack and person.chat.slack_channel:
            found.append(
                Recipient(
                    Medium.SLACK,
                    person.chat.slack_channel,
                    Audience.TEAM,
                    person.language,
                    person.name,
                    shift,
                )
            )
        return found

    def _owner(self, facts: TicketFacts) -> Engineer | Person:
        """The ticket's assignee from the team file, else the on-duty engineer."""
        assert self.team is not None  # noqa: S101 - callers check
        assignee = facts.view.assignee
        if assignee is not None:
            found = self.team.engineer(assignee.id) or self.team.member_by_email(assignee.email)
            if found is not None:
                return found
        return self.team.duty()

    def _person(self, entry: str) -> Engineer | Person | str | None:
        """An escalation entry: a team address, a role or engineer id, or an outside address."""
        if self.team is None:
            return entry if "@" in entry else None
        if "@" in entry:
            return self.team.member_by_email(entry) or entry
        role = _ROLES.get(entry.strip().lower())
        if role == "lead":
            return self.team.lead
        if role == "am":
            return self.team.account_manager
        if entry.strip().lower() in ("on_duty", "duty"):
            return self.team.duty()
        return self.team.engineer(entry.strip().lower())

    def _client_thread(self, facts: TicketFacts, *, with_ack: bool = True) -> tuple[str, ...]:
        """The client's own mail, then our acknowledgement: later notices thread under both."""
        refs = [facts.client_message_id] if facts.client_message_id else []
        if with_ack:
            ack_id = derive_id(
                facts.view.id, Trigger.ACKNOWLEDGEMENT.value, facts.view.requester.email.lower()
            )
            refs.append(outbound_message_id(facts.view.id, str(ack_id), self.links.mail_domain))
        return tuple(refs)

    def _lang(self, facts: TicketFacts, contract: Contract | None) -> Language:
        """The client's language: the ticket's, else the contract's."""
        if facts.view.classification is not None:
            return facts.view.classification.language
        return contract.language if contract else Language.RU

    def _timezone(self, facts: TicketFacts, contract: Contract | None) -> str:
        if facts.view.sla is not None:
            return facts.view.sla.timezone
        return contract.calendar.timezone if contract else "UTC"

    def _due(self, due: datetime, contract: Contract | None, facts: TicketFacts) -> str:
        timezone = self._timezone(facts, contract)
        return f"{format_due(due, timezone, self._lang(facts, contract))} ({timezone})"

    def _context(
        self,
        facts: TicketFacts,
        contract: Contract | None,
        language: Language,
        extra: dict[str, Any],
        *,
        due: datetime | None = None,
    ) -> dict[str, Any]:
        """Every variable a template may use (StrictUndefined: all are always defined)."""
        view = facts.view
        verdict = view.classification
        timezone = self._timezone(facts, contract)
        first_due = due or (view.sla.first_response_due if view.sla else None)
        resolution_due = view.sla.resolution_due if view.sla else None

        def when(instant: datetime | None) -> str | None:
            if instant is None:
                return None
            return f"{format_due(instant, timezone, language)} ({timezone})"

        assignee = None
        if view.assignee is not None:
            person = self.team.engineer(view.assignee.id) if self.team else None
            assignee = (person.name if person else None) or view.assignee.id
        return {
            "ticket": {
                "id": view.id,
                "tenant": view.tenant,
                "tenant_name": contract.name if contract else None,
                "subject": one_line(view.subject, 150),
                "summary": _summary(facts.body, view.subject),
                "requester_name": view.requester.name or view.requester.email,
                "requester_email": view.requester.email,
                "category": verdict.category.value if verdict else None,
                "scope": verdict.scope.value if verdict else None,
                "priority": facts.priority.value if facts.priority else None,
                "reasons": list(verdict.reasons) if verdict else [],
                "basis": scope_basis(verdict.reasons) if verdict else None,
                "assignee": assignee,
                "status_url": self.links.status(view.tenant, view.id),
                "open_url": self.links.open(view.tenant, view.id),
            },
            "deadline": {
                "first_response": when(first_due),
                "resolution": when(resolution_due),
                "timezone": timezone,
            },
            **extra,
        }


_BASIS = re.compile(r"^(.+?) is (?:included|billable|excluded) in .+'s contract$")


def scope_basis(reasons: Iterable[str]) -> str | None:
    """What the scope verdict rests on: a contract condition (``consumables``) or a category.

    Read from the classifier's last reason of the form "<basis> is <scope> in <name>'s
    contract"; None when there is none (the templates then say less, never something wrong).
    """
    for reason in reversed(list(reasons)):
        match = _BASIS.match(reason.strip())
        if match:
            return match[1].strip().replace(" ", "_")
    return None


def _summary(body: str, subject: str) -> str:
    """The request in a line: the first non-empty line of the body, else the subject."""
    for line in body.splitlines():
        if line.strip():
            return one_line(line, 200)
    return one_line(subject, 200)
