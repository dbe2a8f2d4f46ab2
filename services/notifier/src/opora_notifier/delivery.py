"""Delivering notices exactly once per (ticket, trigger, recipient), or saying why not.

For each notice, in the order given (the client's acknowledgement first):

1. A notice whose cause is older than ``max_age`` (a replayed stream) is not sent.
2. The idempotency record is read: ``sent`` or ``failed`` means done already. A record left
   ``sending`` or ``committing`` by a live attempt (its lease not run out) means another
   replica is at it: wait. One whose lease ran out was left by a crash: recovery below.
3. On the first try, quiet hours (non-urgent team alerts off shift) and the recipient's rate
   limit may hold the notice: the caller redelivers the trigger later.
4. The record is claimed (``sending``, compare-and-set), the channel sends; right before the
   message can reach the receiver it calls ``commit`` and the record becomes ``committing``.
5. Success: ``NotificationSent`` is published (its id derived from the notification id), then
   the record becomes ``sent``. Failure: a temporary one is retried in this call with
   exponential back-off and jitter (the record says ``retrying`` and counts attempts, across
   redeliveries too); after the last try, or a final refusal, ``NotificationFailed`` and a
   dead letter (``opora.dlq.<consumer>``, with the reason) are published, then ``failed``.

Recovery of a crashed attempt: if the stream already holds its ``NotificationSent`` or
``NotificationFailed``, the record is repaired. Otherwise the channel is asked (the outbox
can tell whether its file is there). A ``sending`` record means nothing can have left: it is
tried again. A ``committing`` one may have left: a client's message is then never sent again
(at most once: ``NotificationFailed`` "uncertain"), a team member's or the webhook's is
(at least once: the same Message-ID or X-Opora-Delivery lets them drop the copy).

A notice about no one ticket (the daily digest, ``ticket_id`` empty) has no history to hold
its events: the record alone says it went, a final failure leaves only the dead letter, and
its mail's Message-ID names no ticket (``<opora.digest.<id>@domain>``).
"""

import asyncio
import base64
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.headerregistry import Address
from typing import Protocol

from opora_notifier.channels import Channel, DeliveryError, Outgoing
from opora_notifier.ledger import DeliveryState, Ledger, LedgerConflict, Record
from opora_notifier.metrics import NotifierMetrics
from opora_notifier.notices import Audience, Medium, Notice
from opora_notifier.policy import quiet_until, retry_delay
from opora_notifier.rendering import Renderer, build_email
from opora_shared import subjects
from opora_shared.events import DeadLetter, NotificationFailed, NotificationSent, derive_id
from opora_shared.mail_ids import outbound_message_id

log = logging.getLogger(__name__)

LEASE_MARGIN_S = 5.0
"""Added to a channel's deadline: a record older than both was left by a dead attempt."""


class Journal(Protocol):
    """Where outcomes are recorded: the events stream and the dead letters."""

    async def sent(self, event: NotificationSent) -> None:
        """Publish a NotificationSent (deduplicated by its event id)."""

    async def failed(self, event: NotificationFailed, letter: DeadLetter, subject: str) -> None:
        """Publish a NotificationFailed and its dead letter."""

    async def dead(self, letter: DeadLetter, subject: str, notification_id: str) -> None:
        """Publish only a dead letter (a notice about no one ticket: nowhere to put an event)."""

    async def recorded(self, tenant: str, ticket_id: str, event_ids: set[str]) -> set[str]:
        """Which of these event ids the ticket's history already holds."""


@dataclass(frozen=True, slots=True)
class TriggerRef:
    """The message that caused the notices: for dead letters, and to keep it from timing out."""

    consumer: str
    subject: str = ""
    stream_seq: int | None = None
    payload: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    heartbeat: Callable[[], Awaitable[None]] | None = None
    held: bool = False
    """Replayed from a hold: it waited on purpose, so its age does not make it stale."""


@dataclass(slots=True)
class Report:
    """What became of each notice, and when to look again at those that wait."""

    outcomes: dict[str, str] = field(default_factory=dict)
    sent: list[Notice] = field(default_factory=list)
    wait_until: datetime | None = None
    waiting: set[str] = field(default_factory=set)
    """Why some wait: quiet, rate, busy."""

    def hold(self, until: datetime, why: str) -> None:
        """Note that a notice waits until ``until``."""
        self.wait_until = until if self.wait_until is None else min(self.wait_until, until)
        self.waiting.add(why)


@dataclass(frozen=True, slots=True)
class _Done:
    outcome: str


@dataclass(frozen=True, slots=True)
class _Retry:
    after_s: float


@dataclass(frozen=True, slots=True)
class _Wait:
    until: datetime
    why: str


_Step = _Done | _Retry | _Wait


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard to try and when to hold back (from the settings)."""

    attempts: int = 5
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    max_age_s: float = 7 * 24 * 3600.0
    rate_limit_per_hour: int = 30
    """Team alerts per person and medium; 0: none."""
    client_rate_limit_per_hour: int = 0
    """Mails per client address; 0: none (every ticket gets its acknowledgement)."""
    busy_s: float = 5.0


class _Commit:
    """The callback a channel calls right before the message may reach the receiver."""

    def __init__(
        self,
        ledger: Ledger,
        notification_id: str,
        claim: Record,
        revision: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.ledger = ledger
        self.notification_id = notification_id
        self.claim = claim
        self.revision = revision
        self.clock = clock
        self.called = False

    async def __call__(self) -> None:
        record = self.claim.model_copy(
            update={"state": DeliveryState.COMMITTING, "at": self.clock()}
        )
        self.revision = await self.ledger.put(self.notification_id, record, self.revision)
        self.called = True


class Dispatcher:
    """Sends notices through their channels, once, with retries and the ledger."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        journal: Journal,
        channels: Mapping[Medium, Channel],
        renderer: Renderer,
        sender: Address,
        mail_domain: str,
        clock: Callable[[], datetime],
        metrics: NotifierMetrics,
        policy: DeliveryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ledger = ledger
        self.journal = journal
        self.channels = dict(channels)
        self.renderer = renderer
        self.sender = sender
        self.mail_domain = mail_domain
        self.clock = clock
        self.metrics = metrics
        self.policy = policy or DeliveryPolicy()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.sleep = sleep

    async def deliver(self, notices: Sequence[Notice], trigger: TriggerRef) -> Report:
        """Deliver every notice (in order, retrying temporary failures); what became of each."""
        report = Report()
        loop = asyncio.get_running_loop()
        queue: list[tuple[float, int, Notice]] = [(0.0, i, n) for i, n in enumerate(notices)]
        while queue:
            queue.sort(key=lambda item: (item[0], item[1]))
            due, index, notice = queue.pop(0)
            if due > loop.time():
                if trigger.heartbeat is not None:
                    await trigger.heartbeat()  # keep the trigger from being redelivered
                await self.sleep(due - loop.time())
            step = await self._attempt(notice, trigger)
            if isinstance(step, _Retry):
                queue.append((loop.time() + step.after_s, index, notice))
            elif isinstance(step, _Wait):
                report.hold(step.until, step.why)
                self._count(notice, self.channels.get(notice.recipient.medium), "held")
            else:
                report.outcomes[notice.notification_id] = step.outcome
                if step.outcome == "sent":
                    report.sent.append(notice)
        return report

    def lease(self, channel: Channel) -> timedelta:
        """How long a claim stands before it is taken for a crashed attempt's."""
        return timedelta(seconds=channel.deadline_s + LEASE_MARGIN_S)

    # -- one attempt ----------------------------------------------------------------------

    async def _attempt(self, notice: Notice, trigger: TriggerRef) -> _Step:
        nid = notice.notification_id
        channel = self.channels.get(notice.recipient.medium)
        if channel is None:  # planned for a channel this deployment no longer has
            return _Done("skipped")
        now = self.clock()
        too_old = now - notice.occurred_at > timedelta(seconds=self.policy.max_age_s)
        if too_old and not trigger.held:
            log.info("notification %s not sent: its cause is too old (replay)", nid)
            self._count(notice, channel, "stale")
            return _Done("stale")
        record, revision = await self.ledger.get(nid)
        if record is not None and record.state in (DeliveryState.SENT, DeliveryState.FAILED):
            self._count(notice, channel, "duplicate")
            return _Done("duplicate")
        out = self._compose(notice, channel, now)
        attempts = 0
        if record is not None:
            attempts = record.attempts
            if record.state in (DeliveryState.SENDING, DeliveryState.COMMITTING):
                expires = record.at + self.lease(channel)
                if now < expires:
                    return _Wait(expires, "busy")
                return await self._recover(notice, out, channel, record, revision, trigger)
        else:
            held = await self._held(notice, now)
            if held is not None:
                return held
        return await self._try(notice, out, channel, attempts, revision, trigger)

    async def _held(self, notice: Notice, now: datetime) -> _Wait | None:
        """Quiet hours, then the rate limit (counted only when the notice is admitted)."""
        until = quiet_until(notice.recipient, urgent=notice.urgent, now=now)
        if until is not None:
            log.info(
                "notification %s held until the shift starts at %s",
                notice.notification_id,
                until.isoformat(),
            )
            return _Wait(until, "quiet")
        admission = await self.ledger.admit(
            notice.recipient.key,
            now=now,
            limit=(
                self.policy.client_rate_limit_per_hour
                if notice.recipient.audience is Audience.CLIENT
                else self.policy.rate_limit_per_hour
            ),
            period_s=3600.0,
            urgent=notice.urgent,
        )
        if not admission.admitted and admission.retry_at is not None:
            log.info("notification %s held by the recipient's rate limit", notice.notification_id)
            return _Wait(admission.retry_at, "rate")
        return None

    async def _try(
        self,
        notice: Notice,
        out: Outgoing,
        channel: Channel,
        attempts: int,
        revision: int | None,
        trigger: TriggerRef,
    ) -> _Step:
        nid = notice.notification_id
        now = self.clock()
        if attempts >= self.policy.attempts:
            reason = f"gave up after {attempts} tries (the last one was interrupted)"
            return await self._fail(notice, out, channel, attempts, reason, revision, trigger)
        claim = Record(
            state=DeliveryState.SENDING, attempts=attempts + 1, at=now, channel=channel.name
        )
        try:
            revision = await self.ledger.put(nid, claim, revision)
        except LedgerConflict:
            return _Wait(now + timedelta(seconds=self.policy.busy_s), "busy")
        commit = _Commit(self.ledger, nid, claim, revision, self.clock)
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(channel.deadline_s):
                remote_id = await channel.send(out, commit)
        except DeliveryError as exc:
            error = exc
        except TimeoutError:
            error = DeliveryError(
                f"{channel.name}: no answer in {channel.deadline_s:.0f} s", temporary=True
            )
        except Exception as exc:  # an unexpected failure must not lose the message
            error = DeliveryError(f"{channel.name}: {type(exc).__name__}", temporary=True)
        else:
            self.metrics.attempts.labels(channel.name, "ok").inc()
            self.metrics.send_seconds.labels(channel.name).observe(
                asyncio.get_running_loop().time() - started
            )
            message_id = out.message_id or remote_id
            await self._succeeded(notice, channel, claim.attempts, message_id, commit.revision)
            return _Done("sent")
        self.metrics.attempts.labels(
            channel.name, "temporary" if error.temporary else "permanent"
        ).inc()
        return await self._failed_attempt(
            notice, out, channel, claim.attempts, error, commit, trigger
        )

    async def _failed_attempt(
        self,
        notice: Notice,
        out: Outgoing,
        channel: Channel,
        attempts: int,
        error: DeliveryError,
        commit: _Commit,
        trigger: TriggerRef,
    ) -> _Step:
        nid = notice.notification_id
        maybe_delivered = commit.called and not error.undelivered
        log.warning(
            "notification %s via %s: attempt %d failed (%s)%s",
            nid,
            channel.name,
            attempts,
            "temporary" if error.temporary else "final",
            ", may have arrived" if maybe_delivered else "",
        )
        if maybe_delivered and notice.recipient.audience is Audience.CLIENT:
            reason = (
                f"uncertain: {error.reason}; the message may have reached {channel.name}, "
                "so it is not sent again (a client never gets it twice)"
            )
            return await self._fail(
                notice, out, channel, attempts, reason, commit.revision, trigger, "uncertain"
            )
        if error.temporary and attempts < self.policy.attempts:
            retrying = Record(
                state=DeliveryState.RETRYING,
                attempts=attempts,
                at=self.clock(),
                channel=channel.name,
                reason=error.reason,
            )
            await self.ledger.put(nid, retrying, commit.revision)
            return _Retry(
                retry_delay(
                    attempts,
                    base=self.policy.backoff_s,
                    cap=self.policy.backoff_max_s,
                    rng=self.rng,
                    hint=error.retry_after,
                )
            )
        reason = error.reason if not error.temporary else f"{error.reason} (after {attempts} tries)"
        return await self._fail(notice, out, channel, attempts, reason, commit.revision, trigger)

    # -- outcomes -------------------------------------------------------------------------

    async def _succeeded(
        self,
        notice: Notice,
        channel: Channel,
        attempts: int,
        message_id: str | None,
        revision: int | None,
    ) -> None:
        nid = notice.notification_id
        now = self.clock()
        if notice.ticket_id:  # a digest is about no one ticket: its record alone says sent
            await self.journal.sent(
                NotificationSent(
                    event_id=derive_id(nid, NotificationSent.event_type()),
                    occurred_at=now,
                    tenant=notice.tenant,
                    ticket_id=notice.ticket_id,
                    notification_id=nid,
                    trigger=notice.trigger.value,
                    channel=channel.name,
                    recipient=notice.recipient.key,
                    message_id=message_id,
                )
            )
        record = Record(
            state=DeliveryState.SENT,
            attempts=attempts,
            at=now,
            channel=channel.name,
            message_id=message_id,
        )
        await self._settle(nid, record, revision)
        self._count(notice, channel, "sent")
        log.info(
            "notification %s (%s, ticket %s) sent via %s",
            nid,
            notice.trigger,
            notice.ticket_id,
            channel.name,
        )

    async def _fail(
        self,
        notice: Notice,
        out: Outgoing,
        channel: Channel,
        attempts: int,
        reason: str,
        revision: int | None,
        trigger: TriggerRef,
        outcome: str = "failed",
    ) -> _Done:
        nid = notice.notification_id
        now = self.clock()
        letter = DeadLetter(
            consumer=trigger.consumer,
            subject=trigger.subject,
            stream=subjects.EVENTS_STREAM if trigger.subject else None,
            stream_seq=trigger.stream_seq,
            num_delivered=max(1, attempts),
            error_type="NotificationFailed",
            reason=f"notification {nid} ({notice.trigger} via {channel.name}): {reason}"[:1000],
            failed_at=now,
            headers=dict(trigger.headers),
            payload_b64=base64.b64encode(trigger.payload).decode(),
        )
        if notice.ticket_id:
            event = NotificationFailed(
                event_id=derive_id(nid, NotificationFailed.event_type()),
                occurred_at=now,
                tenant=notice.tenant,
                ticket_id=notice.ticket_id,
                notification_id=nid,
                trigger=notice.trigger.value,
                channel=channel.name,
                recipient=notice.recipient.key,
                reason=reason[:1000],
                attempts=max(1, attempts),
            )
            await self.journal.failed(event, letter, subjects.dead_letter(trigger.consumer))
        else:
            await self.journal.dead(letter, subjects.dead_letter(trigger.consumer), nid)
        record = Record(
            state=DeliveryState.FAILED,
            attempts=attempts,
            at=now,
            channel=channel.name,
            message_id=out.message_id,
            reason=reason[:1000],
        )
        await self._settle(nid, record, revision)
        self._count(notice, channel, outcome)
        log.error(
            "notification %s (%s, ticket %s) via %s %s after %d attempt(s)",
            nid,
            notice.trigger,
            notice.ticket_id,
            channel.name,
            outcome,
            attempts,
        )
        return _Done(outcome)

    async def _settle(self, nid: str, record: Record, revision: int | None) -> None:
        """Write a final record; the event is out already, so a lost race changes nothing."""
        try:
            await self.ledger.put(nid, record, revision)
        except LedgerConflict:
            log.warning("notification %s: record changed meanwhile; the event stands", nid)

    async def _recover(
        self,
        notice: Notice,
        out: Outgoing,
        channel: Channel,
        record: Record,
        revision: int | None,
        trigger: TriggerRef,
    ) -> _Step:
        """A claim whose lease ran out: the attempt died. Repair, give up, or try again."""
        nid = notice.notification_id
        sent_id = str(derive_id(nid, NotificationSent.event_type()))
        failed_id = str(derive_id(nid, NotificationFailed.event_type()))
        found = (
            await self.journal.recorded(notice.tenant, notice.ticket_id, {sent_id, failed_id})
            if notice.ticket_id
            else set()
        )
        if found:
            state = DeliveryState.SENT if sent_id in found else DeliveryState.FAILED
            repaired = record.model_copy(update={"state": state, "at": self.clock()})
            await self._settle(nid, repaired, revision)
            self._count(notice, channel, "duplicate")
            return _Done("duplicate")
        confirmed = await channel.confirm(out)
        log.warning(
            "notification %s: found %s from an attempt that died (delivered: %s)",
            nid,
            record.state,
            {True: "yes", False: "no", None: "unknown"}[confirmed],
        )
        if confirmed is True:
            await self._succeeded(notice, channel, record.attempts, out.message_id, revision)
            return _Done("sent")
        if (
            confirmed is None
            and record.state is DeliveryState.COMMITTING
            and notice.recipient.audience is Audience.CLIENT
        ):
            reason = (
                f"uncertain: an attempt died after handing the message to {channel.name} at "
                f"{record.at.isoformat()}; not sent again (a client never gets it twice)"
            )
            return await self._fail(
                notice, out, channel, record.attempts, reason, revision, trigger, "uncertain"
            )
        return await self._try(notice, out, channel, record.attempts, revision, trigger)

    # -- helpers --------------------------------------------------------------------------

    def _compose(self, notice: Notice, channel: Channel, now: datetime) -> Outgoing:
        """Render the notice and, for mail, build the message with its Message-ID."""
        nid = notice.notification_id
        rendered = self.renderer.render(notice)
        if notice.recipient.medium is not Medium.EMAIL:
            return Outgoing(notice, nid, rendered)
        message_id = (
            outbound_message_id(notice.ticket_id, nid, self.mail_domain)
            if notice.ticket_id
            else f"<opora.{notice.trigger.value}.{nid}@{self.mail_domain}>"
        )
        mail = build_email(
            notice,
            rendered,
            sender=self.sender,
            message_id=message_id,
            now=now,
            cte=channel.cte or "8bit",
        )
        return Outgoing(notice, nid, rendered, message_id, mail)

    def _count(self, notice: Notice, channel: Channel | None, outcome: str) -> None:
        name = channel.name if channel is not None else notice.recipient.medium.value
        self.metrics.notifications.labels(name, notice.trigger.value, outcome).inc()
