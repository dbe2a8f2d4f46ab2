"""An alert signal to ticket events: open, update, acknowledge or resolve, deduplicated.

(tenant, source, dedup key) names one alert. Its ticket is found through claims in the
``opora_ticket_ids`` bucket, the same compare-and-set mechanism the intake uses for
Idempotency-Keys and Message-IDs (``create`` fails when the key exists, so two replicas
claiming one key get one ticket):

- the first trigger claims ``alert.<hash(tenant, source, key)>`` with a fresh ticket number;
- a trigger for a key whose ticket is resolved claims ``alert.<hash(..., after <ticket>)>``: a
  new ticket (with ``related_ticket``), never a reopened one, as PagerDuty does. So a key maps
  to a chain of tickets, and the last link is the current one;
- a repeated trigger on an open ticket records what changed as an internal ``note`` (the new
  rendering), or nothing when the rendering is the same as the last one;
- acknowledge and resolve act on the current ticket, when it is still open; without one they
  do nothing (``ignored``).

Every event id is derived from the ticket and what caused it, so a retry stores nothing twice.
A claim whose ticket was never stored (a crash between claim and publish) is completed by the
next trigger with the same number and event id.
"""

import hashlib
import logging
from dataclasses import dataclass

from faststream.nats import NatsBroker
from faststream.nats.publisher.usecase import LogicPublisher
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from opora_intake.adapters.ticket_ids import TicketIds
from opora_intake.integrations.models import Outcome
from opora_intake.integrations.normalize import AlertSignal, requester_address, source_name
from opora_intake.metrics import IntakeMetrics
from opora_shared import subjects
from opora_shared.events import Actor, Event, Requester, TicketReceived, TicketUpdated, derive_id
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.service import Clock
from opora_shared.tickets import TicketView, fold
from opora_shared.vocabulary import Channel, TicketChange, TicketStatus

log = logging.getLogger(__name__)

MAX_CHAIN = 10_000
"""A bound on one key's chain of tickets, so that no walk can loop for ever."""
INTEGRATION_ACTORS = frozenset({"token", "integration"})


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one signal did."""

    outcome: Outcome
    ticket_id: str | None


class AlertKeys:
    """The chain of tickets of each alert key, in the ticket-ids bucket."""

    def __init__(self, js: JetStreamContext, ids: TicketIds) -> None:
        self._js = js
        self._ids = ids
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(subjects.TICKET_IDS_BUCKET)
        return self._kv

    @staticmethod
    def _key(ref: str, after: str | None) -> str:
        text = ref if after is None else f"{ref}\x1fafter\x1f{after}"
        return "alert." + hashlib.sha256(text.encode()).hexdigest()[:40]

    async def _get(self, key: str) -> str | None:
        try:
            entry = await (await self._bucket()).get(key)
        except KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    async def current(self, ref: str) -> str | None:
        """The key's current ticket (the last of its chain), or None before its first trigger."""
        ticket_id = await self._get(self._key(ref, None))
        for _ in range(MAX_CHAIN):
            if ticket_id is None:
                return None
            following = await self._get(self._key(ref, ticket_id))
            if following is None:
                return ticket_id
            ticket_id = following
        msg = "an alert key's chain of tickets is too long"
        raise RuntimeError(msg)

    async def claim(self, ref: str, after: str | None) -> str:
        """The ticket that follows ``after`` (None: the first) for the key, claimed if new."""
        key = self._key(ref, after)
        existing = await self._get(key)
        if existing is not None:
            return existing
        ticket_id = await self._ids.next_id()
        try:
            await (await self._bucket()).create(key, ticket_id.encode())
        except KeyWrongLastSequenceError:
            theirs = await self._get(key)  # another replica claimed it first: use theirs
            if theirs is None:
                raise
            return theirs
        return ticket_id


@dataclass
class AlertIntake:
    """Turns alert signals into ticket events (shared by the HTTP routes and the NATS inlet)."""

    broker: NatsBroker
    received: LogicPublisher
    js: JetStreamContext
    ids: TicketIds
    metrics: IntakeMetrics
    clock: Clock

    def __post_init__(self) -> None:
        self.keys = AlertKeys(self.js, self.ids)

    async def ingest(self, tenant: str, signal: AlertSignal, actor: Actor) -> IngestResult:
        """Apply one signal to its key's ticket; returns once every effect is stored."""
        ref = "\x1f".join((tenant, signal.source, signal.dedup_key))
        current = await self.keys.current(ref)
        events = await ticket_events(self.js, current, tenant=tenant) if current else []
        if signal.action == "trigger":
            if current is None:
                return await self._open(tenant, signal, await self.keys.claim(ref, None), None)
            if not events:  # claimed, but the receipt was never stored: store it now
                return await self._open(tenant, signal, current, None)
            view = fold(events)
            if view.status is TicketStatus.RESOLVED:
                following = await self.keys.claim(ref, current)
                return await self._open(tenant, signal, following, current)
            return await self._note(view, events, signal, actor)
        if current is None or not events:
            return IngestResult("ignored", current)
        view = fold(events)
        if signal.action == "acknowledge":
            if view.status not in (TicketStatus.NEW, TicketStatus.OPEN):
                return IngestResult("unchanged", view.id)
            await self._update(view, TicketChange.ACKNOWLEDGED, signal.body, actor, "ack", events)
            return IngestResult("acknowledged", view.id)
        if view.status is TicketStatus.RESOLVED:
            return IngestResult("unchanged", view.id)
        await self._update(view, TicketChange.RESOLVED, signal.body, actor, "resolve", events)
        return IngestResult("resolved", view.id)

    async def _open(
        self, tenant: str, signal: AlertSignal, ticket_id: str, related: str | None
    ) -> IngestResult:
        event = TicketReceived(
            event_id=derive_id(ticket_id, TicketReceived.event_type()),
            occurred_at=self.clock(),
            tenant=tenant,
            ticket_id=ticket_id,
            channel=Channel.INTEGRATION,
            requester=Requester(
                email=requester_address(signal.source, tenant), name=source_name(signal.source)
            ),
            subject=signal.subject,
            body=signal.body,
            source_ref=f"integration:{signal.source}:{signal.dedup_key}"[:1000],
            related_ticket=related,
        )
        ack = await publish_event(self.received, event)
        if ack.duplicate:  # a replica racing on the same claim stored it first
            return IngestResult("unchanged", ticket_id)
        self.metrics.received.labels(Channel.INTEGRATION, tenant).inc()
        log.info("ticket %s received (integration, tenant %s)", ticket_id, tenant)
        return IngestResult("created", ticket_id)

    async def _note(
        self, view: TicketView, events: list[Event], signal: AlertSignal, actor: Actor
    ) -> IngestResult:
        """A repeated trigger: a note with the new rendering, or nothing when it is the same."""
        last = next((e.body for e in events if isinstance(e, TicketReceived)), None)
        for event in events:
            if isinstance(event, TicketUpdated) and _integration_note(event):
                last = event.text
        if last == signal.body:
            return IngestResult("unchanged", view.id)
        await self._update(view, TicketChange.NOTE, signal.body, actor, "update", events)
        return IngestResult("updated", view.id)

    async def _update(
        self,
        view: TicketView,
        change: TicketChange,
        text: str,
        actor: Actor,
        cause: str,
        events: list[Event],
    ) -> None:
        # The same ticket, cause and history give the same id: a retry is deduplicated.
        earlier = sum(1 for e in events if isinstance(e, TicketUpdated) and e.change is change)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        event = TicketUpdated(
            event_id=derive_id(view.id, "integration", cause, str(earlier), digest),
            occurred_at=self.clock(),
            tenant=view.tenant,
            ticket_id=view.id,
            change=change,
            actor=actor,
            text=text,
        )
        await publish_event(self.broker, event)
        log.info("ticket %s: %s by integration", view.id, change.value)


def _integration_note(event: TicketUpdated) -> bool:
    return (
        event.change is TicketChange.NOTE
        and event.actor.kind in INTEGRATION_ACTORS
        and bool(event.text)
    )
