"""Notifier subscribers: a ticket event in, the notices it calls for out. Thin.

Each handler reads the ticket's history, asks the ``Planner`` (pure) who hears what, and
hands the notices to the ``Dispatcher``, which sends each once. When some notices must wait
(quiet hours, a rate limit, another replica sending the same message) the trigger is
acknowledged and held in KV until due (``adapters/holds_kv.py``); a background task replays
due holds through the same code, and whatever went out already is skipped by its record.

The daily digest has no event to trigger it: a second background task looks every
``digest_scan_s`` for tenants whose digest is due (``digest.py``), reads their open tickets
from the ticket index and hands the digests to the same dispatcher, whose records make each
go once per (tenant, person, day) across scans and replicas.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from email.headerregistry import Address

from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from opora_notifier.adapters.holds_kv import Held, KvHolds
from opora_notifier.adapters.journal import StreamJournal
from opora_notifier.adapters.ledger_kv import KvLedger
from opora_notifier.channels import Channel
from opora_notifier.delivery import DeliveryPolicy, Dispatcher, Report, TriggerRef
from opora_notifier.digest import bundles, digest_day, due_at
from opora_notifier.metrics import NotifierMetrics
from opora_notifier.notices import Medium, Notice, Trigger
from opora_notifier.planning import URGENT, Links, Planner, Reach, TicketFacts
from opora_notifier.rendering import Renderer
from opora_notifier.settings import NotifierSettings
from opora_shared import subjects
from opora_shared.contract_store import ContractStore
from opora_shared.errors import ContractError, PoisonMessageError, TicketNotFoundError
from opora_shared.events import (
    DeadLetter,
    Event,
    NotificationFailed,
    NotificationSent,
    SlaArmed,
    SlaBreached,
    SlaWarning,
    TicketClassified,
    TicketEscalated,
    TicketUpdated,
    decode,
    parse_event,
)
from opora_shared.nats.broker import EVENTS, jetstream
from opora_shared.nats.history import ticket_events
from opora_shared.nats.stage import each_message
from opora_shared.team import Team
from opora_shared.ticket_index import TicketIndex
from opora_shared.types import UNKNOWN_TENANT

log = logging.getLogger(__name__)

SERVICE = "notifier"
"""The service's name: its dead letters go to ``opora.dlq.notifier``."""
ACK = "notifier-ack"
"""Durable consumer of SlaArmed: new tickets (acknowledgement, approval, review, page)."""
UNKNOWN = "notifier-unknown"
"""Durable consumer of TicketClassified of the unknown tenant."""
SLA_WARNING = "notifier-sla-warning"
SLA_BREACHED = "notifier-sla-breached"
ESCALATED = "notifier-escalated"
UPDATES = "notifier-updates"
"""Durable consumer of TicketUpdated: replies, waiting on the client, resolved, approvals."""

DIGEST = "notifier-digest"
"""Not a consumer: the daily digest job, as dead letters and logs name it."""

HOLD_CLAIM = timedelta(minutes=2)
"""How long a replica owns a due hold while it replays it."""


class Notifier:
    """What the handlers share: the ticket's history, the planner, the dispatcher, holds."""

    def __init__(
        self,
        broker: NatsBroker,
        settings: NotifierSettings,
        *,
        contracts: ContractStore,
        channels: Mapping[Medium, Channel],
        links: Links,
        journal: StreamJournal,
        metrics: NotifierMetrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.contracts = contracts
        self.links = links
        self.metrics = metrics
        self.clock = clock
        self.reach = Reach(
            telegram=Medium.TELEGRAM in channels,
            slack=Medium.SLACK in channels,
            webhook=Medium.WEBHOOK in channels,
        )
        self._channels = channels
        self._journal = journal
        self._renderer = Renderer()
        self._dispatcher: Dispatcher | None = None
        self._holds: KvHolds | None = None
        self._digested: set[tuple[str, date]] = set()
        """(tenant, day) whose digests this replica has settled: not planned again today."""
        self._soonest: datetime | None = None
        """When the soonest hold this replica made falls due (None: none waiting)."""
        self._sooner = asyncio.Event()
        """Set when this replica makes a hold that falls due before the next scan."""
        self.process: dict[str, Callable[[Event, TriggerRef], Awaitable[Report | None]]] = {
            ACK: self._armed,
            UNKNOWN: self._unknown,
            SLA_WARNING: self._warning,
            SLA_BREACHED: self._breached,
            ESCALATED: self._escalated,
            UPDATES: self._updated,
        }

    # -- the parts, built on first use (the KV handles need the started connection) -------

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher over the KV ledger."""
        if self._dispatcher is None:
            s = self.settings
            self._dispatcher = Dispatcher(
                ledger=KvLedger(jetstream(self.broker)),
                journal=self._journal,
                channels=self._channels,
                renderer=self._renderer,
                sender=Address(display_name=s.support_name, addr_spec=s.support_address),
                mail_domain=s.mail_domain,
                clock=self.clock,
                metrics=self.metrics,
                policy=DeliveryPolicy(
                    attempts=s.notify_attempts,
                    backoff_s=s.notify_backoff_s,
                    backoff_max_s=s.notify_backoff_max_s,
                    max_age_s=s.notify_max_age_s,
                    rate_limit_per_hour=s.rate_limit_per_hour,
                    client_rate_limit_per_hour=s.client_rate_limit_per_hour,
                    busy_s=s.hold_busy_s,
                ),
            )
        return self._dispatcher

    @property
    def holds(self) -> KvHolds:
        """Held triggers in KV."""
        if self._holds is None:
            self._holds = KvHolds(jetstream(self.broker))
        return self._holds

    def planner(self) -> Planner:
        """A planner over the team and contracts in use now (they hot-reload)."""
        try:
            team: Team | None = self.contracts.team
        except ContractError as exc:
            log.error("no team file, engineer alerts are off: %s", exc)
            team = None
        return Planner(team=team, reach=self.reach, links=self.links)

    async def facts(
        self, tenant: str, ticket_id: str, ref: TriggerRef | None = None
    ) -> TicketFacts:
        """The ticket as its events tell it (read from the tap when it holds the trigger)."""
        seen = None
        if ref is not None and ref.subject.startswith(f"{subjects.EVENTS_PREFIX}."):
            seen = ref.stream_seq  # the trigger is one of the ticket's events
        events = await ticket_events(jetstream(self.broker), ticket_id, tenant=tenant, seen=seen)
        try:
            return TicketFacts.from_events(events)
        except (TicketNotFoundError, StopIteration):
            msg = f"ticket {ticket_id}: no ticket.received in its history"
            raise PoisonMessageError(msg) from None

    # -- one trigger ----------------------------------------------------------------------

    async def handle(self, consumer: str, event: Event, raw: Msg) -> None:
        """Process a delivered trigger; hold it in KV if some of its notices must wait."""
        ref = _trigger(raw, consumer)
        report = await self.process[consumer](event, ref)
        if report is None or report.wait_until is None:
            return
        if ref.stream_seq is None:  # not from the stream: nothing to replay it from
            delay = (report.wait_until - self.clock()).total_seconds()
            await raw.nak(delay=min(max(delay, 0.05), self.settings.hold_scan_s))
            return
        await self.holds.hold(consumer, ref.stream_seq, report.wait_until)
        self._note_hold(report.wait_until)
        log.info(
            "%s: trigger %s held until %s (%s)",
            consumer,
            ref.stream_seq,
            report.wait_until.isoformat(),
            ", ".join(sorted(report.waiting)),
        )

    async def deliver(
        self, notices: Sequence[Notice], ref: TriggerRef, ticket: TicketFacts
    ) -> Report:
        """Send the notices; note how long the client waited for the acknowledgement."""
        report = await self.dispatcher.deliver(notices, ref)
        for notice in report.sent:
            if notice.trigger is Trigger.ACKNOWLEDGEMENT:
                waited = (self.clock() - ticket.view.created_at).total_seconds()
                self.metrics.ack_seconds.labels(notice.tenant).observe(max(0.0, waited))
        return report

    async def _armed(self, event: Event, ref: TriggerRef) -> Report | None:
        assert isinstance(event, SlaArmed)  # noqa: S101 - routed by subject
        if event.generation != 1 and event.priority not in URGENT:
            return None  # re-armed (paused, resumed...): nothing new to say
        ticket = await self.facts(event.tenant, event.ticket_id, ref)
        contract = self.contracts.book.get(event.tenant)
        return await self.deliver(self.planner().armed(ticket, contract, event), ref, ticket)

    async def _unknown(self, event: Event, ref: TriggerRef) -> Report | None:
        assert isinstance(event, TicketClassified)  # noqa: S101
        ticket = await self.facts(event.tenant, event.ticket_id, ref)
        return await self.deliver(self.planner().unknown_sender(ticket, event), ref, ticket)

    async def _warning(self, event: Event, ref: TriggerRef) -> Report | None:
        assert isinstance(event, SlaWarning)  # noqa: S101
        ticket = await self.facts(event.tenant, event.ticket_id, ref)
        contract = self.contracts.book.get(event.tenant)
        notices = self.planner().sla_warning(ticket, contract, event)
        return await self.deliver(notices, ref, ticket)

    async def _breached(self, event: Event, ref: TriggerRef) -> Report | None:
        assert isinstance(event, SlaBreached)  # noqa: S101
        ticket = await self.facts(event.tenant, event.ticket_id, ref)
        contract = self.contracts.book.get(event.tenant)
        notices = self.planner().sla_breached(ticket, contract, event)
        return await self.deliver(notices, ref, ticket)

    async def _escalated(self, event: Event, ref: TriggerRef) -> Report | None:
        assert isinstance(event, TicketEscalated)  # noqa: S101
        ticket = await self.facts(event.tenant, event.ticket_id, ref)
        contract = self.contracts.book.get(event.tenant)
        notices = self.planner().escalated(ticket, contract, event)
        return await self.deliver(notices, ref, ticket)

    async def _updated(self, event: Event, ref: TriggerRef) -> Report | None:
        assert isinstance(event, TicketUpdated)  # noqa: S101
        ticket = await self.facts(event.tenant, event.ticket_id, ref)
        notices = self.planner().updated(ticket, self.contracts.book.get(event.tenant), event)
        return await self.deliver(notices, ref, ticket) if notices else None

    # -- the daily digest -----------------------------------------------------------------

    async def send_digests(self) -> int:
        """Send every digest due now, each once per (tenant, person, day); how many went."""
        now = self.clock()
        due = [
            (contract, contract.digest, day)
            for contract in self.contracts.book
            if contract.digest is not None
            and (day := digest_day(contract.digest, contract.calendar, now)) is not None
            and (contract.tenant, day) not in self._digested
        ]
        planner = self.planner() if due else None
        if planner is None or planner.team is None:
            return 0
        index = TicketIndex(jetstream(self.broker))
        sent = 0
        for contract, policy, day in due:
            found = bundles(await index.summaries([contract.tenant]), policy, planner.team)
            notices = planner.digest(contract, found, day, due_at(policy, contract.calendar, day))
            if not notices:  # nothing open of those priorities: nobody hears today
                self._digested.add((contract.tenant, day))
                continue
            ref = TriggerRef(
                consumer=DIGEST,
                payload=json.dumps({"tenant": contract.tenant, "day": day.isoformat()}).encode(),
            )
            report = await self.dispatcher.deliver(notices, ref)
            sent += len(report.sent)
            if report.wait_until is None:  # all settled; what waits is tried at the next scan
                self._digested.add((contract.tenant, day))
            log.info(
                "digest %s %s: %d of %d sent", contract.tenant, day, len(report.sent), len(notices)
            )
        self._digested = {(t, d) for t, d in self._digested if d >= now.date() - timedelta(days=2)}
        return sent

    async def run_digests(self) -> None:
        """Background task: send due digests every ``digest_scan_s``."""
        while True:
            await asyncio.sleep(self.settings.digest_scan_s)
            try:
                await self.send_digests()
            except (NatsError, TimeoutError, OSError) as exc:
                log.warning("digests not sent now: %s", type(exc).__name__)
            except Exception:  # a bug must not stop tomorrow's digests
                log.exception("digests: scan failed")

    # -- held triggers --------------------------------------------------------------------

    async def replay_due(self) -> int:
        """Replay every due hold this replica can claim; how many were replayed."""
        now = self.clock()
        replayed = 0
        for held in await self.holds.due(now):
            if held.consumer not in self.process:
                continue
            claimed = await self.holds.claim(held, now + HOLD_CLAIM)
            if claimed is None:
                continue  # another replica has it
            await self._replay(claimed)
            replayed += 1
        return replayed

    async def _replay(self, held: Held) -> None:
        raw = await jetstream(self.broker).get_msg(
            subjects.EVENTS_STREAM, seq=held.stream_seq, direct=True
        )
        event = parse_event(raw.data or b"")
        ref = TriggerRef(
            consumer=held.consumer,
            subject=str(raw.subject),
            stream_seq=held.stream_seq,
            payload=bytes(raw.data or b""),
            headers={str(k): str(v) for k, v in (raw.headers or {}).items()},
            held=True,
        )
        try:
            report = await self.process[held.consumer](event, ref)
        except PoisonMessageError as exc:
            log.error("held trigger %s dropped: %s", held.key, exc)
            await self.holds.release(held)
            return
        if report is not None and report.wait_until is not None:
            await self.holds.postpone(held, report.wait_until)
            self._note_hold(report.wait_until)
        else:
            await self.holds.release(held)

    def _note_hold(self, due: datetime) -> None:
        """Scan again when a hold this replica made falls due, if that is before the next scan."""
        if self._soonest is None or due < self._soonest:
            self._soonest = due
            self._sooner.set()

    async def _wait_for_scan(self) -> None:
        """Until ``hold_scan_s`` has passed, or the soonest hold this replica made is due.

        A trigger held for another attempt's lease (a crashed notifier's claim, about 15 s)
        waited for the next periodic scan too, up to ``hold_scan_s`` (30 s) after the lease ran
        out; an acknowledgement redelivered after a crash went out up to 45 s late. Holds other
        replicas made are found by the periodic scan, as before.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + self.settings.hold_scan_s
        while (left := end - loop.time()) > 0:
            if self._soonest is not None:
                due = (self._soonest - self.clock()).total_seconds()
                if due <= 0:
                    self._soonest = None  # due now: the scan replays it (or holds it again)
                    return
                left = min(left, max(due, HOLD_SCAN_MIN_S))
            self._sooner.clear()
            with contextlib.suppress(TimeoutError):  # woken sooner, or the wait ran out
                await asyncio.wait_for(self._sooner.wait(), left)

    async def run_holds(self) -> None:
        """Background task: replay due holds every ``hold_scan_s``, and when one this replica
        made falls due sooner."""
        while True:
            await self._wait_for_scan()
            try:
                await self.replay_due()
            except (NatsError, TimeoutError, OSError) as exc:
                log.warning("held notifications not replayed now: %s", type(exc).__name__)
            except Exception:  # a bug must not stop every later replay
                log.exception("held notifications: replay failed")


HOLD_SCAN_MIN_S = 0.05
"""The shortest wait between two scans for holds."""


def register(
    broker: NatsBroker,
    settings: NotifierSettings,
    *,
    contracts: ContractStore,
    channels: Mapping[Medium, Channel],
    links: Links,
    metrics: NotifierMetrics,
    clock: Callable[[], datetime],
) -> Notifier:
    """Attach the notifier's subscribers and publishers to a broker."""
    journal = StreamJournal(
        sent=broker.publisher(
            subjects.event_template(NotificationSent),
            stream=EVENTS,
            schema=NotificationSent,
            title="notification.sent",
            description="A notification left Opora (once per ticket, trigger and recipient).",
        ),
        failed=broker.publisher(
            subjects.event_template(NotificationFailed),
            stream=EVENTS,
            schema=NotificationFailed,
            title="notification.failed",
            description="A notification was not delivered after its retries, or may have "
            "been and is not sent again; the reason says which.",
        ),
        dead=broker.publisher(
            subjects.dead_letter("{consumer}"),
            schema=DeadLetter,
            title="dead letter",
            description="The trigger of a failed notification, with the reason.",
        ),
        js=lambda: jetstream(broker),
    )
    notifier = Notifier(
        broker,
        settings,
        contracts=contracts,
        channels=channels,
        links=links,
        journal=journal,
        metrics=metrics,
        clock=clock,
    )

    def stage(
        name: str,
        consumer: str,
        event_type: type[Event],
        title: str,
        doc: str,
        *,
        tenant: str = "*",
    ) -> None:
        """One trigger consumer: each message of a fetched batch handled alone, in flight
        together (FastStream's per-message path cost a fifth of the notifier's CPU)."""

        async def one(raw: Msg) -> None:
            await notifier.handle(consumer, decode(event_type, raw.data), raw)

        each_message(
            broker,
            settings,
            one,
            subject=subjects.event_pattern(event_type, tenant=tenant),
            durable=consumer,
            service=SERVICE,
            payload=event_type,
            title=title,
            description=doc,
            name=name,
        )

    stage(
        "on_armed",
        ACK,
        SlaArmed,
        "sla.armed:notify",
        "A ticket's clocks started: acknowledge it to the requester with the real deadline, "
        "ask the approver (billable, excluded work), the lead (needs_review), and page the "
        "on-duty engineer (P1/P2). A re-armed ticket is paged once if it became P1/P2.",
    )
    stage(
        "on_unknown",
        UNKNOWN,
        TicketClassified,
        "ticket.classified:notify-unknown",
        "A sender no contract knows: acknowledge without a deadline; the lead reviews.",
        tenant=UNKNOWN_TENANT,
    )
    stage(
        "on_warning",
        SLA_WARNING,
        SlaWarning,
        "sla.warning:alert",
        "A deadline is near: alert the assignee (else on-duty), in their shift unless P1/P2.",
    )
    stage(
        "on_breached",
        SLA_BREACHED,
        SlaBreached,
        "sla.breached:alert",
        "A deadline was missed: alert the assignee (else on-duty), in their shift unless P1/P2.",
    )
    stage(
        "on_escalated",
        ESCALATED,
        TicketEscalated,
        "sla.escalated:alert",
        "The ticket went up the escalation chain: alert that level's people.",
    )
    stage(
        "on_updated",
        UPDATES,
        TicketUpdated,
        "ticket.updated:notify",
        "Tell the client what matters: an engineer's answer, a question (waiting on you), the "
        "resolution, the approver's decision (and the assignee). Notes stay internal.",
    )
    return notifier


def _trigger(raw: Msg, consumer: str) -> TriggerRef:
    """Where the notices came from (for a dead letter), and how to keep the message alive."""
    try:
        seq: int | None = raw.metadata.sequence.stream
    except Exception:  # not a JetStream message
        seq = None
    return TriggerRef(
        consumer=consumer,
        subject=str(raw.subject),
        stream_seq=seq,
        payload=bytes(raw.data or b""),
        headers={str(k): str(v) for k, v in (raw.headers or {}).items()},
        heartbeat=raw.in_progress,
    )
