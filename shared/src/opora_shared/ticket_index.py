"""The ticket index: one summary per ticket in the ``opora_tickets`` KV bucket, for lists.

The events stream is the truth; this is a projection of it. On every event of a ticket the
indexer folds the ticket's whole history again and writes the summary under
``<tenant>.<ticket id>``, but only when it has seen more events than the stored summary did
(compare-and-set on the KV revision, retried on conflict). Replicas and redeliveries are
therefore harmless, and a lost index is rebuilt by replaying the stream.

Listing reads a tenant's keys (or every tenant's, for engineer tokens) with one ordered
consumer, filters in memory and pages newest first by ticket number.
"""

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict

from opora_shared import subjects
from opora_shared.errors import TicketNotFoundError
from opora_shared.events import Event, TicketAssigned
from opora_shared.nats.history import ticket_events
from opora_shared.nats.kv import kv_snapshot
from opora_shared.nats.stage import Writer, kv_record
from opora_shared.tickets import TicketView, fold
from opora_shared.vocabulary import (
    Category,
    Channel,
    Priority,
    Scope,
    TicketStatus,
)

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 10
_REMEMBERED = 4096
"""Summaries remembered per index (least recently stored go first)."""


class TicketSummary(BaseModel):
    """What a list of tickets shows about each."""

    model_config = ConfigDict(frozen=True)

    id: str
    tenant: str
    status: TicketStatus
    channel: Channel
    subject: str
    requester: str
    created_at: datetime
    updated_at: datetime
    category: Category | None = None
    scope: Scope | None = None
    priority: Priority | None = None
    assignee: str | None = None
    first_response_due: datetime | None = None
    resolution_due: datetime | None = None
    breached: bool = False
    events: int = 0
    """How many events the summary was folded from (only ever grows)."""


def summarize(view: TicketView, events: list[Event]) -> TicketSummary:
    """The summary of a folded ticket."""
    verdict = view.classification
    assignee = None
    for event in events:
        if isinstance(event, TicketAssigned):
            assignee = event.assignee
    return TicketSummary(
        id=view.id,
        tenant=view.tenant,
        status=view.status,
        channel=view.channel,
        subject=view.subject,
        requester=view.requester.email,
        created_at=view.created_at,
        updated_at=view.updated_at,
        category=verdict.category if verdict else None,
        scope=verdict.scope if verdict else None,
        priority=verdict.priority if verdict else None,
        assignee=assignee,
        first_response_due=view.sla.first_response_due if view.sla else None,
        resolution_due=view.sla.resolution_due if view.sla else None,
        breached=bool(view.sla and view.sla.breaches),
        events=len(events),
    )


def index_key(tenant: str, ticket_id: str) -> str:
    """The KV key of a ticket's summary."""
    return f"{tenant}.{ticket_id}"


@dataclass(frozen=True, slots=True)
class _Plan:
    """A ticket's summary folded now, and the stored one with the revision it was read at."""

    key: str
    summary: TicketSummary
    revision: int | None
    stored: TicketSummary | None

    @property
    def needed(self) -> bool:
        """The summary is newer than the stored one."""
        return self.stored is None or self.stored.events < self.summary.events

    @property
    def payload(self) -> bytes:
        """The summary as stored."""
        return self.summary.model_dump_json().encode()


class TicketIndex:
    """Reads and writes the ``opora_tickets`` bucket."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._kv: KeyValue | None = None
        self._writer = Writer(js)
        self._written: dict[str, tuple[int | None, TicketSummary]] = {}
        """The summaries this process stored last, with their revisions (oldest first): a
        ticket is refreshed on about every event, and reading the summary back before each
        write cost a direct get per refresh."""

    async def kv(self) -> KeyValue:
        """The bucket (bound on first use)."""
        if self._kv is None:
            self._kv = await self.js.key_value(subjects.TICKETS_BUCKET)
        return self._kv

    async def refresh(self, tenant: str, ticket_id: str) -> TicketSummary | None:
        """Fold the ticket again and store the summary if it is newer; the stored summary."""
        kv = await self.kv()
        for _ in range(_CAS_ATTEMPTS):
            plan = await self._plan(tenant, ticket_id)
            if plan is None:
                return None  # an event before the ticket's receipt: nothing to index yet
            if not plan.needed:
                self._remember(plan.key, plan.revision, plan.stored)
                return plan.stored
            try:
                if plan.revision is None:
                    written = await kv.create(plan.key, plan.payload)
                else:
                    written = await kv.update(plan.key, plan.payload, last=plan.revision)
            except KeyWrongLastSequenceError:
                continue  # another replica wrote it: read it again
            self._remember(plan.key, written, plan.summary)
            return plan.summary
        msg = f"ticket {ticket_id}: the index kept changing under {_CAS_ATTEMPTS} attempts"
        raise RuntimeError(msg)

    async def refresh_many(
        self, tickets: Sequence[tuple[str, str]], until: Sequence[int | None] | None = None
    ) -> list[Exception | None]:
        """Refresh tickets together; each one's failure, or None.

        ``until``: per ticket, the stream sequence of its newest event the caller holds; the
        ticket is folded up to there at least (None: up to its last event).

        Every ticket is folded first; the newer summaries are then written together, each
        compared and set against the revision it was read at: as one atomic batch when there
        are enough of them (one write and one fsync for all), else one by one. A ticket whose
        write failed (another replica wrote it meanwhile, and then the server refuses the
        whole batch) is refreshed alone, as ``refresh`` does.
        """
        ends = until if until is not None else [None] * len(tickets)
        plans = await asyncio.gather(
            *(
                self._plan(tenant, ticket_id, end)
                for (tenant, ticket_id), end in zip(tickets, ends, strict=True)
            ),
            return_exceptions=True,
        )
        outcomes: list[Exception | None] = []
        writes: list[tuple[int, _Plan]] = []
        for n, plan in enumerate(plans):
            if isinstance(plan, Exception):
                outcomes.append(plan)
                continue
            if isinstance(plan, BaseException):
                raise plan  # cancelled
            outcomes.append(None)
            if plan is not None and plan.needed:
                writes.append((n, plan))
            elif plan is not None:
                self._remember(plan.key, plan.revision, plan.stored)
        if not writes:
            return outcomes
        records = [
            kv_record(subjects.TICKETS_BUCKET, plan.key, plan.payload, plan.revision)
            for _, plan in writes
        ]
        stored = await self._writer.store(
            records,
            lambda i: self.js.publish(
                records[i].subject, records[i].data, headers=records[i].headers
            ),
        )
        again: list[int] = []
        for (n, plan), error, revision in zip(writes, stored.errors, stored.sequences, strict=True):
            if error is None:
                self._remember(plan.key, revision, plan.summary)
            else:
                again.append(n)
        retried = await asyncio.gather(
            *(self.refresh(*tickets[n]) for n in again), return_exceptions=True
        )
        for n, outcome in zip(again, retried, strict=True):
            if isinstance(outcome, Exception):
                outcomes[n] = outcome
            elif isinstance(outcome, BaseException):
                raise outcome
        return outcomes

    async def _plan(self, tenant: str, ticket_id: str, until: int | None = None) -> "_Plan | None":
        """The ticket's summary now, and the one stored with its revision (None: no receipt)."""
        events = await ticket_events(self.js, ticket_id, tenant=tenant, until=until)
        try:
            summary = summarize(fold(events, with_events=False), events)
        except TicketNotFoundError:
            return None
        key = index_key(tenant, ticket_id)
        known = self._written.pop(key, None)
        if known is not None:  # what this process stored last: no read before the write
            revision, stored = known
        else:
            try:
                entry = await (await self.kv()).get(key)
            except NotFoundError:
                revision, stored = None, None
            else:
                revision = entry.revision
                stored = TicketSummary.model_validate_json(entry.value) if entry.value else None
        return _Plan(key, summary, revision, stored)

    def _remember(self, key: str, revision: int | None, summary: TicketSummary | None) -> None:
        if summary is None:
            return
        self._written[key] = (revision, summary)
        while len(self._written) > _REMEMBERED:
            self._written.pop(next(iter(self._written)))

    async def get(self, tenant: str, ticket_id: str) -> TicketSummary | None:
        """One summary, or None."""
        try:
            entry = await (await self.kv()).get(index_key(tenant, ticket_id))
        except NotFoundError:
            return None
        return TicketSummary.model_validate_json(entry.value) if entry.value else None

    async def summaries(self, tenants: Iterable[str] | None) -> list[TicketSummary]:
        """Every summary of these tenants (None: all tenants), one snapshot each."""
        filters = [f"{t}.*" for t in tenants] if tenants is not None else [">"]
        found: list[TicketSummary] = []
        for pattern in filters:
            for entry in await kv_snapshot(self.js, subjects.TICKETS_BUCKET, pattern):
                try:
                    found.append(TicketSummary.model_validate_json(entry.value or b""))
                except ValueError:
                    log.warning("unreadable summary %s skipped", entry.key)
        return found


def select(
    summaries: Iterable[TicketSummary],
    *,
    status: Iterable[TicketStatus] = (),
    priority: Iterable[Priority] = (),
    scope: Iterable[Scope] = (),
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[TicketSummary], str | None]:
    """Filter and page newest first; the page and the cursor of the next one (None: last)."""
    statuses, priorities, scopes = set(status), set(priority), set(scope)
    chosen = sorted(
        (
            s
            for s in summaries
            if (not statuses or s.status in statuses)
            and (not priorities or s.priority in priorities)
            and (not scopes or s.scope in scopes)
            and (before is None or int(s.id) < before)
        ),
        key=lambda s: int(s.id),
        reverse=True,
    )
    page = chosen[:limit]
    cursor = page[-1].id if len(chosen) > limit else None
    return page, cursor


OPEN_STATUSES = (
    TicketStatus.NEW,
    TicketStatus.OPEN,
    TicketStatus.IN_PROGRESS,
    TicketStatus.WAITING_ON_CLIENT,
)
"""What ``status=open`` means in a list: anything not resolved (or closed)."""
