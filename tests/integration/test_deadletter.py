import asyncio
import base64
import json
import uuid

import pytest
from faststream import FastStream
from nats.errors import TimeoutError as NatsTimeoutError

from opora_shared import subjects
from opora_shared.events import DeadLetter, TicketReceived
from opora_shared.nats.broker import durable_consumer, make_broker
from opora_shared.nats.publish import publish_event
from opora_shared.settings import OporaSettings
from opora_shared.testing.factories import make_ticket_received
from opora_shared.testing.stored import stored
from opora_shared.testing.waiting import wait_for


async def dead_letters(js, consumer: str) -> list[DeadLetter]:
    return await stored(js, subjects.dead_letter(consumer), DeadLetter)


@pytest.fixture
def harness(nats_url):
    """A broker like a service's, on a subject and durable of this test only."""
    consumer = f"dltest-{uuid.uuid4().hex[:8]}"
    settings = OporaSettings(nats_url=nats_url, max_deliver=3)
    broker = make_broker(settings, service=consumer)
    tenant = f"t{uuid.uuid4().hex[:8]}"
    calls: list[str] = []
    return broker, settings, consumer, tenant, calls


class TestDeadLetters:
    async def test_always_failing_handler_is_retried_then_dead_lettered(self, harness, js):
        broker, settings, consumer, tenant, calls = harness

        @broker.subscriber(
            subjects.event_pattern(TicketReceived, tenant=tenant),
            **durable_consumer(settings, consumer),
        )
        async def handler(event: TicketReceived) -> None:
            calls.append(event.ticket_id)
            raise RuntimeError("database on fire")

        app = FastStream(broker)
        await app.start()
        try:
            event = make_ticket_received(tenant=tenant)
            await publish_event(broker, event)
            letters = await wait_for(
                lambda: dead_letters(js, consumer), timeout=15, message="dead letter"
            )
        finally:
            await app.stop()
        assert calls == [event.ticket_id] * 3
        (letter,) = letters
        assert letter.reason == "RuntimeError: database on fire"
        assert letter.num_delivered == 3
        assert letter.subject == subjects.event_subject(event)
        assert TicketReceived.model_validate_json(base64.b64decode(letter.payload_b64)) == event

    async def test_poison_message_is_dead_lettered_at_once_without_its_values(self, harness, js):
        broker, settings, consumer, tenant, calls = harness

        @broker.subscriber(
            subjects.event_pattern(TicketReceived, tenant=tenant),
            **durable_consumer(settings, consumer),
        )
        async def handler(event: TicketReceived) -> None:
            calls.append(event.ticket_id)

        app = FastStream(broker)
        await app.start()
        try:
            bad = json.dumps({"type": "ticket.received", "requester": "secret@romashka.ru"})
            await js.publish(f"opora.ev.{tenant}.ticket.1.received", bad.encode())
            letters = await wait_for(
                lambda: dead_letters(js, consumer), timeout=10, message="dead letter"
            )
        finally:
            await app.stop()
        assert calls == []
        (letter,) = letters
        assert letter.num_delivered == 1
        assert letter.error_type == "ValidationError"
        assert "event_id" in letter.reason
        assert "secret@romashka.ru" not in letter.reason

    async def test_transient_failure_is_retried_and_succeeds_without_dead_letter(self, harness, js):
        broker, settings, consumer, tenant, calls = harness
        done = asyncio.Event()

        @broker.subscriber(
            subjects.event_pattern(TicketReceived, tenant=tenant),
            **durable_consumer(settings, consumer),
        )
        async def handler(event: TicketReceived) -> None:
            calls.append(event.ticket_id)
            if len(calls) == 1:
                raise ConnectionError("flaky")
            done.set()

        app = FastStream(broker)
        await app.start()
        try:
            await publish_event(broker, make_ticket_received(tenant=tenant))
            await asyncio.wait_for(done.wait(), timeout=10)
        finally:
            await app.stop()
        assert len(calls) == 2
        assert await dead_letters(js, consumer) == []

    async def test_nats_unavailable_is_retried_past_max_deliver(self, harness, js):
        """A leader election outlasting max_deliver retries must not dead-letter the message."""
        broker, settings, consumer, tenant, calls = harness
        done = asyncio.Event()

        @broker.subscriber(
            subjects.event_pattern(TicketReceived, tenant=tenant),
            **durable_consumer(settings, consumer),
        )
        async def handler(event: TicketReceived) -> None:
            calls.append(event.ticket_id)
            if len(calls) <= settings.max_deliver:  # one more failure than a bug would get
                raise NatsTimeoutError
            done.set()

        app = FastStream(broker)
        await app.start()
        try:
            await publish_event(broker, make_ticket_received(tenant=tenant))
            await asyncio.wait_for(done.wait(), timeout=20)
        finally:
            await app.stop()
        assert len(calls) == settings.max_deliver + 1
        assert await dead_letters(js, consumer) == []
