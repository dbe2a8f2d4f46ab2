"""Inbound mail to tickets: new tickets, threaded replies, bounces, auto-replies, loops, dups.

One entry point, ``MailIntake.receive(raw)``, shared by the SMTP server and the IMAP pollers.
It returns only after every effect is stored in JetStream, so the caller can then accept the
mail (SMTP 250, IMAP move); any NATS failure propagates, so the sender retries. Every mail,
ticket or not, leaves a MailRecorded with its outcome and reason. Logs carry ids only.

Mail from a member of the provider's team (the team file, exact address) that refers to a
ticket is an engineer's reply: a command (``engineer_commands``) or an answer for the client.
It never makes a ticket, and a mail from any other address never runs a command.
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from faststream.nats import NatsBroker
from faststream.nats.publisher.usecase import LogicPublisher
from nats.js import JetStreamContext

from opora_intake.adapters.attachments import AttachmentStore
from opora_intake.adapters.mail_guard import MailGuard
from opora_intake.adapters.mail_index import MailClaim, MailIndex
from opora_intake.adapters.ticket_ids import TicketIds
from opora_intake.engineer_commands import EngineerCommand, Verb, parse_command
from opora_intake.errors import EngineerCommandError
from opora_intake.metrics import IntakeMetrics
from opora_intake.parsing.email import ParsedEmail, parse_email, strip_subject_prefixes
from opora_intake.sender_auth import authentication_results, judge_sender
from opora_intake.settings import IntakeSettings
from opora_shared import subjects
from opora_shared.contract_store import ContractStore
from opora_shared.errors import ContractError
from opora_shared.events import (
    Actor,
    AttachmentRef,
    NotificationFailed,
    Requester,
    TicketAssigned,
    TicketReceived,
    TicketUpdated,
    derive_id,
)
from opora_shared.events.intake import MailOutcome, MailRecorded
from opora_shared.mail_ids import parse_outbound
from opora_shared.nats.broker import jetstream
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.service import Clock
from opora_shared.team import Engineer, Person
from opora_shared.tickets import TicketView, fold
from opora_shared.types import UNKNOWN_TENANT
from opora_shared.vocabulary import Channel, TicketChange, TicketStatus

log = logging.getLogger(__name__)

NO_SUBJECT = "(no subject)"


@dataclass(frozen=True, slots=True)
class MailResult:
    """What happened to one mail."""

    outcome: MailOutcome
    reason: str
    ticket_id: str | None = None
    refuse: bool = False
    """Answer SMTP with 550 (the sender's MTA bounces the reason back to them)."""

    def smtp_reply(self) -> str:
        """The line the SMTP server answers with: 250, or 550 for a refused engineer mail."""
        if self.refuse:
            reason = " ".join(self.reason.split())[:400]
            return "550 5.7.1 " + reason.encode("ascii", "backslashreplace").decode("ascii")
        if self.ticket_id and self.outcome in (MailOutcome.TICKET, MailOutcome.DUPLICATE):
            return f"250 2.0.0 OK ticket #{self.ticket_id}"
        if self.ticket_id:
            return f"250 2.0.0 OK recorded on ticket #{self.ticket_id}"
        return f"250 2.0.0 OK {self.outcome.value}"


@dataclass
class MailIntake:
    """Turns raw mail into ticket events; the SMTP and IMAP channels call ``receive``."""

    settings: IntakeSettings
    broker: NatsBroker
    received: LogicPublisher
    contracts: ContractStore
    ids: TicketIds
    metrics: IntakeMetrics
    clock: Clock

    def __post_init__(self) -> None:
        self._js: JetStreamContext = jetstream(self.broker)
        self.index = MailIndex(self._js)
        self.guard = MailGuard(self._js)
        self.attachments = AttachmentStore(self._js)
        self._support = {a.lower() for a in self.settings.support_addresses}

    async def receive(
        self, raw: bytes, *, channel: str = "smtp", envelope_from: str | None = None
    ) -> MailResult:
        """Process one inbound mail; returns once every effect is stored."""
        if len(raw) > self.settings.max_message_bytes:
            return await self._record(
                raw,
                None,
                channel,
                MailOutcome.OVERSIZE,
                f"{len(raw)} bytes over {self.settings.max_message_bytes}",
            )
        parsed = parse_email(raw, max_attachment_bytes=self.settings.max_attachment_bytes)
        message_id = parsed.message_id or f"<sha256.{hashlib.sha256(raw).hexdigest()}@opora>"
        sender = parsed.from_address or (envelope_from or "").lower() or None

        if self._is_our_own(parsed, sender):
            return await self._record(
                raw, parsed, channel, MailOutcome.LOOP, "our own mail came back", sender=sender
            )
        if parsed.is_bounce:
            return await self._bounce(raw, parsed, channel)

        claim = await self.index.claim(message_id, self.ids.next_id)
        if claim.done:
            return await self._record(
                raw,
                parsed,
                channel,
                MailOutcome.DUPLICATE,
                "this Message-ID was processed before",
                sender=sender,
                ticket_id=claim.ticket_id if claim.ticket_id != "0" else None,
                tenant=claim.tenant,
            )
        result, tenant = await self._route(raw, parsed, message_id, sender, claim, channel)
        await self.index.finish(
            message_id, ticket_id=result.ticket_id, tenant=tenant, outcome=result.outcome.value
        )
        return result

    # -- routing ------------------------------------------------------------------------------

    async def _route(
        self,
        raw: bytes,
        parsed: ParsedEmail,
        message_id: str,
        sender: str | None,
        claim: MailClaim,
        channel: str,
    ) -> tuple[MailResult, str | None]:
        member = self._team_member(sender)
        if member is not None and sender is not None:
            return await self._engineer_mail(raw, parsed, message_id, sender, member, channel)
        sender_tenant = self.contracts.book.tenant_for(sender) if sender else UNKNOWN_TENANT
        target = await self._thread_target(parsed, sender, sender_tenant)
        now = self.clock()
        if target is not None and parsed.is_automatic:
            per_ticket = await self.guard.count("t", target.id, now)
            if per_ticket > self.settings.auto_mail_cap_per_ticket:
                result = await self._record(
                    raw,
                    parsed,
                    channel,
                    MailOutcome.LOOP,
                    f"automatic mail cap per ticket reached "
                    f"({self.settings.auto_mail_cap_per_ticket}/day)",
                    sender=sender,
                    ticket_id=target.id,
                    tenant=target.tenant,
                )
                return result, target.tenant
            await self._update(target, TicketChange.AUTOMATIC_REPLY, parsed, message_id, sender)
            result = await self._record(
                raw,
                parsed,
                channel,
                MailOutcome.AUTOMATIC_RECORDED,
                parsed.automatic_reason or "automatic mail",
                sender=sender,
                ticket_id=target.id,
                tenant=target.tenant,
            )
            return result, target.tenant
        if parsed.is_automatic:
            reason = parsed.automatic_reason or "automatic mail"
            if sender and await self.guard.count("s", sender, now) > (
                self.settings.auto_mail_cap_per_sender
            ):
                reason = f"{reason}; sender over its daily cap"
            result = await self._record(
                raw, parsed, channel, MailOutcome.AUTOMATIC, reason, sender=sender
            )
            return result, None
        related: str | None = None
        if target is not None:
            if target.status is not TicketStatus.RESOLVED:
                await self._update(target, TicketChange.CLIENT_REPLIED, parsed, message_id, sender)
                result = await self._record(
                    raw,
                    parsed,
                    channel,
                    MailOutcome.THREADED,
                    "a reply to an open ticket",
                    sender=sender,
                    ticket_id=target.id,
                    tenant=target.tenant,
                )
                return result, target.tenant
            if self._within_reopen_window(target, now):
                await self._update(
                    target, TicketChange.REOPENED, parsed, message_id, sender, with_text=False
                )
                await self._update(target, TicketChange.CLIENT_REPLIED, parsed, message_id, sender)
                result = await self._record(
                    raw,
                    parsed,
                    channel,
                    MailOutcome.REOPENED,
                    "a reply to a recently resolved ticket",
                    sender=sender,
                    ticket_id=target.id,
                    tenant=target.tenant,
                )
                return result, target.tenant
            related = target.id
        ticket_id = await self._new_ticket(
            raw, parsed, message_id, sender, sender_tenant, claim.ticket_id, related
        )
        reason = f"a new ticket following up #{related}" if related else "a new request"
        result = await self._record(
            raw,
            parsed,
            channel,
            MailOutcome.TICKET,
            reason,
            sender=sender,
            ticket_id=ticket_id,
            tenant=sender_tenant,
        )
        return result, sender_tenant

    def _is_our_own(self, parsed: ParsedEmail, sender: str | None) -> bool:
        if sender and sender in self._support:
            return True
        return parse_outbound(parsed.message_id, self.settings.mail_domain) is not None

    def _within_reopen_window(self, target: TicketView, now: datetime) -> bool:
        resolved_at = max(
            (
                e["occurred_at"]
                for e in target.events
                if e.get("type") == "ticket.updated" and e.get("change") == "resolved"
            ),
            default=None,
        )
        if resolved_at is None:
            return True
        when = datetime.fromisoformat(str(resolved_at).replace("Z", "+00:00"))
        return now - when <= timedelta(days=self.settings.reopen_window_days)

    async def _thread_target(
        self, parsed: ParsedEmail, sender: str | None, sender_tenant: str, *, team: bool = False
    ) -> TicketView | None:
        """The ticket this mail answers, if the sender may write to it (the team may, to any)."""
        candidates: list[str] = []
        for ref in (parsed.in_reply_to, *reversed(parsed.references)):
            if not ref:
                continue
            ours = parse_outbound(ref, self.settings.mail_domain)
            if ours:
                candidates.append(ours[0])
                continue
            known = await self.index.ticket_of(ref)
            if known:
                candidates.append(known[0])
        if parsed.ticket_ref:
            candidates.append(parsed.ticket_ref)
        seen: set[str] = set()
        for ticket_id in candidates:
            if ticket_id in seen:
                continue
            seen.add(ticket_id)
            events = await ticket_events(self._js, ticket_id)
            if not events:
                continue
            view = fold(events)
            if team or self._may_write(view, sender, sender_tenant):
                return view
        return None

    @staticmethod
    def _may_write(view: TicketView, sender: str | None, sender_tenant: str) -> bool:
        """Tenant isolation: only the ticket's tenant (or its requester) can thread into it."""
        if sender and sender == view.requester.email.lower():
            return True
        return sender_tenant != UNKNOWN_TENANT and sender_tenant == view.tenant

    # -- the provider's team ------------------------------------------------------------------

    def _team_member(self, sender: str | None) -> Engineer | Person | None:
        """The team member with exactly this address, or None (no team file: nobody)."""
        if not sender:
            return None
        try:
            return self.contracts.team.member_by_email(sender)
        except ContractError:
            return None

    async def _engineer_mail(
        self,
        raw: bytes,
        parsed: ParsedEmail,
        message_id: str,
        sender: str,
        member: Engineer | Person,
        channel: str,
    ) -> tuple[MailResult, str | None]:
        """A team member's mail: a command or an answer on the ticket it refers to, or nothing."""

        async def record(
            outcome: MailOutcome, reason: str, target: TicketView | None = None, *, refuse: bool
        ) -> tuple[MailResult, str | None]:
            tenant = target.tenant if target else None
            result = await self._record(
                raw,
                parsed,
                channel,
                outcome,
                reason,
                sender=sender,
                ticket_id=target.id if target else None,
                tenant=tenant,
            )
            return MailResult(result.outcome, result.reason, result.ticket_id, refuse), tenant

        verdict = judge_sender(
            authentication_results(raw),
            sender.rpartition("@")[2],
            authserv_id=self.settings.mail_authserv_id,
        )
        if verdict.result == "fail" or (
            verdict.result == "none" and self.settings.mail_authserv_id
        ):
            # Recorded, not bounced: a bounce would go to whoever forged the envelope.
            reason = f"a team address failed sender authentication ({verdict.detail})"
            return await record(MailOutcome.REJECTED, reason, refuse=False)
        if parsed.is_automatic:
            reason = (parsed.automatic_reason or "automatic mail") + " from a team member"
            if await self.guard.count("s", sender, self.clock()) > (
                self.settings.auto_mail_cap_per_sender
            ):
                reason = f"{reason}; sender over its daily cap"
            return await record(MailOutcome.AUTOMATIC, reason, refuse=False)
        target = await self._thread_target(parsed, sender, UNKNOWN_TENANT, team=True)
        if target is None:
            reason = "engineer mail without a ticket reference"
            return await record(MailOutcome.REJECTED, reason, refuse=True)
        try:
            command = parse_command(parsed.text)
            if command.verb is Verb.ASSIGN:
                done = await self._assign(target, command, member, message_id)
            else:
                change = command.change
                assert change is not None  # noqa: S101 - every verb but assign has one
                await self._update(
                    target,
                    change,
                    parsed,
                    message_id,
                    sender,
                    actor=Actor(kind="engineer", id=member.id),
                    text=command.text,
                )
                done = f"{change.value} by {member.id}"
        except EngineerCommandError as exc:
            return await record(MailOutcome.REJECTED, str(exc), target, refuse=True)
        return await record(MailOutcome.ENGINEER, done, target, refuse=False)

    async def _assign(
        self,
        target: TicketView,
        command: EngineerCommand,
        member: Engineer | Person,
        message_id: str,
    ) -> str:
        """``#assign maria``: a manual TicketAssigned; what was done, for the mail's record."""
        team = self.contracts.team
        wanted = (command.argument or "").lower()
        found = team.member_by_email(wanted) if "@" in wanted else team.engineer(wanted)
        assignee = team.engineer(found.id) if found is not None else None
        if assignee is None:
            known = ", ".join(e.id for e in team.engineers)
            named = "with that address" if "@" in wanted else repr(command.argument)
            msg = f"#assign: no engineer {named} in the team ({known})"
            raise EngineerCommandError(msg)
        if target.classification is None:
            msg = f"#assign: ticket #{target.id} is not classified yet; send it again in a minute"
            raise EngineerCommandError(msg)
        previous = next(
            (
                str(e.get("assignee"))
                for e in reversed(target.events)
                if e.get("type") == TicketAssigned.event_type()
            ),
            None,
        )
        if previous == assignee.id:
            return f"#assign: already assigned to {assignee.id}"
        event = TicketAssigned(
            event_id=derive_id(message_id, TicketAssigned.event_type()),
            occurred_at=self.clock(),
            tenant=target.tenant,
            ticket_id=target.id,
            assignee=assignee.id,
            assignee_email=assignee.email,
            team=team.team_for(target.classification.category),
            priority=target.classification.priority,
            rule="manual",
            previous_assignee=previous,
            reasons=(f"assigned by {member.id} by mail",),
        )
        await publish_event(self.broker, event)
        return f"assigned to {assignee.id} by {member.id}"

    # -- effects ------------------------------------------------------------------------------

    async def _store_attachments(
        self, ticket_id: str, parsed: ParsedEmail
    ) -> tuple[AttachmentRef, ...]:
        refs: list[AttachmentRef] = []
        budget = self.settings.max_attachments_bytes
        for item in parsed.attachments:
            if item.size > self.settings.max_attachment_bytes or item.size > budget:
                log.info(
                    "ticket %s: attachment over the limit skipped (%d bytes)", ticket_id, item.size
                )
                continue
            budget -= item.size
            refs.append(
                await self.attachments.put(
                    ticket_id, item.filename, item.content_type, item.data, inline=item.inline
                )
            )
        return tuple(refs)

    async def _new_ticket(
        self,
        raw: bytes,
        parsed: ParsedEmail,
        message_id: str,
        sender: str | None,
        tenant: str,
        ticket_id: str,
        related: str | None,
    ) -> str:
        attachments = await self._store_attachments(ticket_id, parsed)
        original = await self.attachments.put_original(ticket_id, message_id, raw)
        subject = strip_subject_prefixes(parsed.subject) or parsed.subject or NO_SUBJECT
        event = TicketReceived(
            event_id=derive_id(ticket_id, TicketReceived.event_type()),
            occurred_at=self.clock(),
            tenant=tenant,
            ticket_id=ticket_id,
            channel=Channel.EMAIL,
            requester=Requester(email=sender or "unknown@invalid", name=parsed.from_name),
            subject=subject[:998],
            body=(parsed.text.strip() or parsed.full_text.strip() or subject)[:100_000],
            source_ref=f"email:{message_id}",
            message_id=message_id,
            attachments=attachments,
            original=original,
            related_ticket=related,
        )
        ack = await publish_event(self.received, event)
        if not ack.duplicate:
            self.metrics.received.labels(Channel.EMAIL, tenant).inc()
            log.info("ticket %s received (email, tenant %s)", ticket_id, tenant)
        return ticket_id

    async def _update(
        self,
        target: TicketView,
        change: TicketChange,
        parsed: ParsedEmail,
        message_id: str,
        sender: str | None,
        *,
        with_text: bool = True,
        actor: Actor | None = None,
        text: str | None = None,
    ) -> None:
        attachments = await self._store_attachments(target.id, parsed) if with_text else ()
        if text is None and with_text:
            text = (parsed.text.strip() or parsed.full_text.strip())[:100_000]
        event = TicketUpdated(
            event_id=derive_id(message_id, change.value),
            occurred_at=self.clock(),
            tenant=target.tenant,
            ticket_id=target.id,
            change=change,
            actor=actor or Actor(kind="client", id=sender or "unknown"),
            text=(text or None) if with_text else None,
            message_id=message_id,
            attachments=attachments,
        )
        await publish_event(self.broker, event)
        log.info("ticket %s: %s by mail", target.id, change.value)

    async def _bounce(self, raw: bytes, parsed: ParsedEmail, channel: str) -> MailResult:
        ours = parse_outbound(parsed.bounced_message_id, self.settings.mail_domain)
        if ours is None:
            return await self._record(
                raw, parsed, channel, MailOutcome.BOUNCE, "a bounce of no notification of ours"
            )
        ticket_id, notification_id = ours
        events = await ticket_events(self._js, ticket_id)
        if not events:
            return await self._record(
                raw,
                parsed,
                channel,
                MailOutcome.BOUNCE,
                f"a bounce for unknown ticket #{ticket_id}",
            )
        view = fold(events)
        sent = next((n for n in view.notifications if n.notification_id == notification_id), None)
        failed = NotificationFailed(
            event_id=derive_id(notification_id, NotificationFailed.event_type(), "bounce"),
            occurred_at=self.clock(),
            tenant=view.tenant,
            ticket_id=ticket_id,
            notification_id=notification_id,
            trigger=sent.trigger if sent else "unknown",
            channel="email",
            recipient=sent.recipient if sent else "unknown",
            reason="bounced: "
            + (strip_subject_prefixes(parsed.subject) or "delivery failed")[:200],
            attempts=1,
        )
        await publish_event(self.broker, failed)
        return await self._record(
            raw,
            parsed,
            channel,
            MailOutcome.BOUNCE,
            f"bounce of notification {notification_id}",
            ticket_id=ticket_id,
            tenant=view.tenant,
        )

    async def record_refusal(
        self, outcome: MailOutcome, reason: str, *, sender: str | None, channel: str = "smtp"
    ) -> MailResult:
        """Record a mail refused before its content was read (e.g. an unknown recipient)."""
        return await self._record(
            f"{outcome}:{sender}:{self.clock().isoformat()}".encode(),
            None,
            channel,
            outcome,
            reason,
            sender=(sender or "").lower() or None,
        )

    async def _record(
        self,
        raw: bytes,
        parsed: ParsedEmail | None,
        channel: str,
        outcome: MailOutcome,
        reason: str,
        *,
        sender: str | None = None,
        ticket_id: str | None = None,
        tenant: str | None = None,
    ) -> MailResult:
        message_id = parsed.message_id if parsed else None
        key = message_id or hashlib.sha256(raw).hexdigest()
        record = MailRecorded(
            record_id=str(derive_id("mail", key, outcome.value)),
            occurred_at=self.clock(),
            channel=channel,
            outcome=outcome,
            reason=reason,
            message_id=message_id,
            sender=sender,
            tenant=tenant,
            ticket_id=ticket_id,
            size=len(raw),
        )
        await self.broker.publish(
            record,
            subjects.mail_record(outcome.value),
            headers={"Nats-Msg-Id": record.record_id},
            stream=subjects.INTAKE_STREAM,
        )
        self.metrics.mail.labels(channel, outcome.value).inc()
        if outcome not in (MailOutcome.TICKET, MailOutcome.THREADED):
            log.info("mail %s: %s (%s)", record.record_id[:8], outcome.value, reason)
        return MailResult(outcome, reason, ticket_id)
