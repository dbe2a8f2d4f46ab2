import uuid
from datetime import UTC, datetime

from faststream.nats import NatsBroker

from opora_shared.events import NotificationSent, TicketReceived
from opora_shared.nats.history import last_event, ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.testing.factories import make_ticket_received


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
