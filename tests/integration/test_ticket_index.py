"""The ticket index: summaries folded from the stream, newest-first pages, tenant-isolated."""

import asyncio
import uuid
from datetime import UTC, datetime

from opora_shared import subjects
from opora_shared.events import Actor, TicketUpdated
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
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
