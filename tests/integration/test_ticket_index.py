"""The ticket index: summaries folded from the stream, newest-first pages, tenant-isolated."""

import asyncio
import collections
import uuid
from datetime import UTC, datetime

from opora_shared import subjects
from opora_shared.events import Actor, DeadLetter, TicketUpdated
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
from opora_shared.testing.stored import stored
from opora_shared.testing.waiting import wait_for
from opora_shared.ticket_index import OPEN_STATUSES, TicketIndex, select
from opora_shared.vocabulary import Priority, Scope, TicketChange, TicketStatus


async def publish(js, *events):
    for event in events:
        await js.publish(subjects.event_subject(event), event.model_dump_json().encode())


def resolved(received):
    return TicketUpdated(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        tenant=received.tenant,
        ticket_id=received.ticket_id,
        change=TicketChange.RESOLVED,
        actor=Actor(kind="engineer", id="maria"),
    )


class TestTicketIndex:
    async def test_refresh_folds_the_history_and_never_goes_back(self, js):
        tenant = f"i{uuid.uuid4().hex[:8]}"
        received = make_ticket_received(tenant=tenant)
        classified = make_ticket_classified(
            tenant=tenant, ticket_id=received.ticket_id, priority=Priority.P2
        )
        await publish(js, received, classified)
        index = TicketIndex(js)
        first = await index.refresh(tenant, received.ticket_id)
        assert (first.status, first.priority, first.events) == (TicketStatus.OPEN, "P2", 2)

        await publish(js, resolved(received))
        results = await asyncio.gather(
            *(index.refresh(tenant, received.ticket_id) for _ in range(5))
        )
        assert {r.events for r in results} == {3}
        stored = await index.get(tenant, received.ticket_id)
        assert (stored.status, stored.events) == (TicketStatus.RESOLVED, 3)
        assert await index.get("someone-else", received.ticket_id) is None

    async def test_a_summary_it_stored_is_not_read_back_before_the_next_write(self, js):
        tenant = f"i{uuid.uuid4().hex[:8]}"
        received = make_ticket_received(tenant=tenant)
        await publish(js, received)
        index = TicketIndex(js)
        kv = await index.kv()
        reads: list[str] = []
        get = kv.get

        async def counted_get(key, *args, **kwargs):
            reads.append(key)
            return await get(key, *args, **kwargs)

        kv.get = counted_get
        await index.refresh(tenant, received.ticket_id)
        await publish(js, make_ticket_classified(tenant=tenant, ticket_id=received.ticket_id))
        await publish(js, resolved(received))
        assert (await index.refresh(tenant, received.ticket_id)).events == 3
        assert len(reads) == 1  # the first refresh only: the second wrote over its own
        # another writer meanwhile (a replica): the next refresh reads, then writes over it
        other = TicketIndex(js)
        await publish(js, resolved(received))
        assert (await other.refresh(tenant, received.ticket_id)).events == 4
        await publish(js, resolved(received))
        assert (await index.refresh(tenant, received.ticket_id)).events == 5
        assert len(reads) == 2
        assert (await other.get(tenant, received.ticket_id)).events == 5

    async def test_a_batch_is_written_with_one_commit_and_a_conflict_falls_back(self, js):
        tenant = f"i{uuid.uuid4().hex[:8]}"
        tickets = [make_ticket_received(tenant=tenant) for _ in range(10)]
        await publish(js, *tickets)
        index = TicketIndex(js)
        pairs = [(tenant, t.ticket_id) for t in tickets]
        assert await index.refresh_many(pairs) == [None] * 10
        assert (index._writer.atomic_batches, index._writer.fallbacks) == (1, 0)

        await publish(
            js, *(make_ticket_classified(tenant=tenant, ticket_id=t.ticket_id) for t in tickets)
        )
        # a replica indexes one of them meanwhile: the batch's compare-and-set fails for it
        await TicketIndex(js).refresh(tenant, tickets[0].ticket_id)
        assert await index.refresh_many(pairs) == [None] * 10
        assert (index._writer.atomic_batches, index._writer.fallbacks) == (1, 1)
        stored = [await index.get(tenant, t.ticket_id) for t in tickets]
        assert [s.events for s in stored] == [2] * 10
        assert {s.status for s in stored} == {TicketStatus.OPEN}

    async def test_listing_is_per_tenant_filtered_and_paged_newest_first(self, js):
        mine, theirs = f"i{uuid.uuid4().hex[:8]}", f"i{uuid.uuid4().hex[:8]}"
        index = TicketIndex(js)
        ids = []
        for n in range(5):
            received = make_ticket_received(tenant=mine, ticket_id=str(1000 + n))
            scope = Scope.BILLABLE if n % 2 else Scope.INCLUDED
            await publish(
                js,
                received,
                make_ticket_classified(tenant=mine, ticket_id=received.ticket_id, scope=scope),
            )
            if n == 0:
                await publish(js, resolved(received))
            await index.refresh(mine, received.ticket_id)
            ids.append(received.ticket_id)
        other = make_ticket_received(tenant=theirs, ticket_id="1999")
        await publish(js, other)
        await index.refresh(theirs, other.ticket_id)

        summaries = await index.summaries([mine])
        assert sorted(s.id for s in summaries) == ids
        page, cursor = select(summaries, status=OPEN_STATUSES, limit=2)
        assert [s.id for s in page] == ["1004", "1003"]
        page, cursor = select(summaries, status=OPEN_STATUSES, limit=2, before=int(cursor))
        assert [s.id for s in page] == ["1002", "1001"]
        assert cursor is None
        billable, _ = select(summaries, scope=[Scope.BILLABLE])
        assert [s.id for s in billable] == ["1003", "1001"]
        both = await index.summaries([mine, theirs])
        assert {s.tenant for s in both} == {mine, theirs}
        assert await index.summaries([f"none{uuid.uuid4().hex[:6]}"]) == []


class TestIndexer:
    async def test_every_event_refreshes_its_tickets_summary(self, nats_url, js):
        from opora_intake import indexer
        from opora_intake.settings import IntakeSettings
        from opora_shared.nats.broker import make_broker
        from opora_shared.testing.waiting import wait_for

        settings = IntakeSettings(nats_url=nats_url)
        broker = make_broker(settings, service="intake")
        indexer.register(broker, settings)
        await broker.start()
        try:
            tenant = f"i{uuid.uuid4().hex[:8]}"
            received = make_ticket_received(tenant=tenant)
            await publish(js, received)
            index = TicketIndex(js)
            await wait_for(
                lambda: index.get(tenant, received.ticket_id), timeout=10, message="indexed"
            )
            await publish(js, make_ticket_classified(tenant=tenant, ticket_id=received.ticket_id))
            await publish(js, resolved(received))

            async def resolved_in_index():
                summary = await index.get(tenant, received.ticket_id)
                return summary and summary.status is TicketStatus.RESOLVED

            await wait_for(resolved_in_index, timeout=10, message="resolution indexed")
            assert (await index.get(tenant, received.ticket_id)).events == 3
        finally:
            await broker.stop()

    async def test_a_batch_refreshes_each_ticket_once_and_settles_a_failing_ticket_alone(
        self, nats_url, js, monkeypatch
    ):
        from opora_intake import indexer
        from opora_intake.settings import IntakeSettings
        from opora_shared.nats.broker import make_broker

        tenant = f"i{uuid.uuid4().hex[:8]}"
        good = [make_ticket_received(tenant=tenant) for _ in range(20)]
        bad = make_ticket_received(tenant=tenant)
        for received in [*good, bad]:  # all waiting before the indexer starts: a few batches
            await publish(
                js,
                received,
                make_ticket_classified(tenant=tenant, ticket_id=received.ticket_id),
            )
        await js.publish(f"{subjects.EVENTS_PREFIX}.{tenant}.junk", b"{}")

        calls: collections.Counter[str] = collections.Counter()
        real = TicketIndex._plan

        async def plan(self, tenant_, ticket_id, until=None):
            calls[ticket_id] += 1
            if ticket_id == bad.ticket_id:
                raise RuntimeError("index on fire")
            return await real(self, tenant_, ticket_id, until)

        monkeypatch.setattr(TicketIndex, "_plan", plan)
        settings = IntakeSettings(nats_url=nats_url, max_deliver=2)
        broker = make_broker(settings, service="intake")
        indexer.register(broker, settings)
        index = TicketIndex(js)

        async def all_indexed():
            found = [await index.get(tenant, r.ticket_id) for r in good]
            return all(f is not None and f.events == 2 for f in found)

        async def letters():
            found = await stored(js, subjects.dead_letter(indexer.DURABLE), DeadLetter)
            mine = [x for x in found if f".{tenant}." in x.subject or x.subject.endswith(tenant)]
            return mine if len(mine) == 3 else None

        await broker.start()
        try:
            await wait_for(all_indexed, timeout=20, message="every good ticket indexed")
            dead = await wait_for(letters, timeout=20, message="the bad ticket dead-lettered")
        finally:
            await broker.stop()
        # the two events of a ticket arrive together and share one refresh (a batch boundary
        # may split a ticket or two)
        assert sum(calls[r.ticket_id] for r in good) <= len(good) + 2
        assert await index.get(tenant, bad.ticket_id) is None
        by_kind = sorted((x.error_type, x.num_delivered, x.subject.split(".")[-1]) for x in dead)
        assert by_kind == [
            ("PoisonMessageError", 1, "junk"),
            ("RuntimeError", 2, "classified"),
            ("RuntimeError", 2, "received"),
        ]
