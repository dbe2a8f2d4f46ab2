import uuid
from datetime import UTC, datetime

from faststream.nats import NatsBroker

from opora_shared import subjects
from opora_shared.events import Actor, NotificationSent, TicketReceived, TicketUpdated
from opora_shared.nats import history
from opora_shared.nats.history import last_event, ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.testing.factories import make_ticket_received
from opora_shared.vocabulary import TicketChange


class TestPublishEvent:
    async def test_same_event_twice_is_stored_once(self, nats_url, js):
        event = make_ticket_received()
        async with NatsBroker(nats_url) as broker:
            first = await publish_event(broker, event)
            second = await publish_event(broker, event)
        assert not first.duplicate
        assert second.duplicate
        assert second.seq == first.seq
        assert [e.event_id for e in await ticket_events(js, event.ticket_id)] == [event.event_id]

    async def test_history_is_one_ticket_oldest_first_across_families(self, nats_url, js):
        received = make_ticket_received()
        other = make_ticket_received()
        sent = NotificationSent(
            event_id=uuid.uuid4(),
            occurred_at=datetime.now(UTC),
            tenant=received.tenant,
            ticket_id=received.ticket_id,
            notification_id="n",
            trigger="acknowledgement",
            channel="outbox",
            recipient="anna@romashka.ru",
        )
        async with NatsBroker(nats_url) as broker:
            for event in (received, other, sent):
                await publish_event(broker, event)
        history = await ticket_events(js, received.ticket_id)
        assert [type(e) for e in history] == [TicketReceived, NotificationSent]
        assert await last_event(js, TicketReceived, received.tenant, received.ticket_id) == received
        assert await last_event(js, NotificationSent, "vector", received.ticket_id) is None

    async def test_unknown_ticket_has_no_history(self, js):
        assert await ticket_events(js, "999999999999") == []

    async def test_a_long_history_is_read_in_batches_and_then_only_what_came_after(
        self, js, monkeypatch
    ):
        tenant = f"h{uuid.uuid4().hex[:8]}"
        received = make_ticket_received(tenant=tenant)

        def note(n: int) -> TicketUpdated:
            return TicketUpdated(
                event_id=uuid.uuid4(),
                occurred_at=datetime.now(UTC),
                tenant=tenant,
                ticket_id=received.ticket_id,
                change=TicketChange.NOTE,
                text=f"note {n}",
                actor=Actor(kind="engineer", id="maria"),
            )

        notes = [note(n) for n in range(history.BATCH + 40)]
        for event in (received, *notes):
            await js.publish(subjects.event_subject(event), event.model_dump_json().encode())
        requests: list[int] = []
        read = history._Batches.read

        async def counted(self, stream, subject, seq, **kwargs):
            requests.append(seq)
            return await read(self, stream, subject, seq, **kwargs)

        monkeypatch.setattr(history._Batches, "read", counted)
        events = await ticket_events(js, received.ticket_id, tenant=tenant)
        assert events == [received, *notes]
        assert len(requests) == 2  # 256, then the rest with the end of the batch

        later = note(-1)
        await js.publish(subjects.event_subject(later), later.model_dump_json().encode())
        assert (await ticket_events(js, received.ticket_id, tenant=tenant))[-1] == later
        assert len(requests) == 3  # one more request, from where the last read ended
