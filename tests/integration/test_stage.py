"""Batch stages: prompt batches, events stored with one commit, failures settled one by one."""

import asyncio
import time
import uuid

import pytest
from faststream import FastStream
from faststream.nats import PullSub
from nats.js.api import StreamConfig
from prometheus_client import CollectorRegistry

from opora_shared import subjects
from opora_shared.events import DeadLetter, TicketClassified, TicketReceived
from opora_shared.nats.broker import NatsBatch, durable_consumer, make_broker
from opora_shared.nats.stage import ATOMIC_MIN, EventWriter, Record, Writer, prompt, run_stage
from opora_shared.settings import OporaSettings
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
from opora_shared.testing.stored import stored
from opora_shared.testing.waiting import wait_for


@pytest.fixture
async def broker(nats_url):
    broker = make_broker(OporaSettings(nats_url=nats_url), service="stagetest")
    await broker.connect()
    yield broker
    await broker.stop()


def tenant() -> str:
    return f"s{uuid.uuid4().hex[:8]}"


def received(tenant_: str, n: int) -> list[TicketReceived]:
    return [make_ticket_received(tenant=tenant_, ticket_id=str(100 + i)) for i in range(n)]


class TestWriter:
    async def test_many_events_are_one_atomic_batch_and_a_repeat_reports_each_duplicate(
        self, broker, js
    ):
        who = tenant()
        events = received(who, ATOMIC_MIN + 2)
        writer = EventWriter(broker)

        first = await writer.store_events(events)
        assert first.atomic
        assert first.errors == [None] * len(events)
        assert first.duplicate == [False] * len(events)
        in_stream = await stored(
            js, subjects.event_pattern(TicketReceived, tenant=who), TicketReceived
        )
        assert in_stream == events  # all of them, in order

        # a redelivered trigger: the server refuses the batch (its ids are stored already)
        again = await writer.store_events(events)
        assert not again.atomic
        assert again.duplicate == [True] * len(events)
        assert (writer.atomic_batches, writer.fallbacks) == (1, 1)
        assert len(
            await stored(js, subjects.event_pattern(TicketReceived, tenant=who), TicketReceived)
        ) == len(events)

    async def test_a_few_events_go_out_one_by_one(self, broker, js):
        who = tenant()
        events = received(who, ATOMIC_MIN - 1)
        writer = EventWriter(broker)
        result = await writer.store_events(events)
        assert not result.atomic
        assert result.duplicate == [False] * len(events)
        assert writer.atomic_batches == 0
        in_stream = await stored(
            js, subjects.event_pattern(TicketReceived, tenant=who), TicketReceived
        )
        assert sorted(e.ticket_id for e in in_stream) == sorted(e.ticket_id for e in events)

    async def test_a_stream_without_atomic_batches_still_gets_every_message(self, broker, js):
        name = f"NOATOMIC_{uuid.uuid4().hex[:8]}"
        await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
        records = [
            Record(f"{name}.{i}", b"x", {"Nats-Msg-Id": f"{name}-{i}"})
            for i in range(ATOMIC_MIN * 2)
        ]
        writer = Writer(broker)
        result = await writer.store(records, lambda i: js.publish(records[i].subject, b"x"))
        assert not result.atomic
        assert result.errors == [None] * len(records)
        assert writer.fallbacks == 1
        assert (await js.stream_info(name)).state.messages == len(records)


class TestStage:
    async def test_a_lone_message_is_handed_over_without_waiting_for_a_full_batch(
        self, nats_url, js
    ):
        who = tenant()
        settings = OporaSettings(nats_url=nats_url)
        broker = make_broker(settings, service="stagetest")
        options = durable_consumer(settings, f"stage-{who}", batch=True)
        # a fetch that may wait 10 s: FastStream's own batch loop would hold a lone message
        options["pull_sub"] = PullSub(batch_size=100, timeout=10.0, batch=True)
        seen: list[tuple[int, float]] = []
        subscriber = prompt(
            broker.subscriber(subjects.event_pattern(TicketReceived, tenant=who), **options)
        )

        @subscriber
        async def handler(batch: NatsBatch) -> None:
            seen.append((len(batch.raw_message), time.monotonic()))

        app = FastStream(broker)
        await app.start()
        try:
            await asyncio.sleep(0.2)  # the first fetch is waiting on the server
            (event,) = received(who, 1)
            sent = time.monotonic()
            await js.publish(subjects.event_subject(event), event.model_dump_json().encode())
            await wait_for(lambda: seen, timeout=9, message="the lone message")
        finally:
            await app.stop()
        ((count, at),) = seen
        assert count == 1
        assert at - sent < 5.0  # handed over at once, not when the 10 s fetch ran out

    async def test_failures_are_settled_alone_and_the_rest_stored_and_acknowledged(
        self, nats_url, js
    ):
        who = tenant()
        settings = OporaSettings(nats_url=nats_url, max_deliver=2)
        consumer = f"stagetest-{who}"
        registry = CollectorRegistry()
        broker = make_broker(settings, service=consumer, registry=registry)
        writer = EventWriter(broker)
        attempts: dict[str, int] = {}
        counted: list[tuple[str, bool]] = []

        async def work(raw) -> list[TicketClassified]:
            event = TicketReceived.model_validate_json(raw.data)
            attempts[event.ticket_id] = attempts.get(event.ticket_id, 0) + 1
            if event.ticket_id == "101":
                raise RuntimeError("database on fire")
            return [make_ticket_classified(tenant=who, ticket_id=event.ticket_id)]

        subscriber = prompt(
            broker.subscriber(
                subjects.event_pattern(TicketReceived, tenant=who),
                **durable_consumer(settings, f"stage-{who}", batch=True),
            )
        )

        @subscriber
        async def handler(batch: NatsBatch) -> None:
            await run_stage(
                batch.raw_message,
                work,
                writer=writer,
                consumer=consumer,
                max_deliver=settings.max_deliver,
                stored=lambda event, duplicate: counted.append((event.ticket_id, duplicate)),
            )

        events = received(who, 12)
        for event in events:
            await js.publish(subjects.event_subject(event), event.model_dump_json().encode())
        await js.publish(f"opora.ev.{who}.ticket.999.received", b'{"type": "ticket.received"}')
        app = FastStream(broker)
        await app.start()
        try:
            letters = await wait_for(
                lambda: _letters(js, consumer, 2), timeout=20, message="two dead letters"
            )
            classified = await stored(
                js, subjects.event_pattern(TicketClassified, tenant=who), TicketClassified
            )
        finally:
            await app.stop()
        assert sorted(c.ticket_id for c in classified) == sorted(
            e.ticket_id for e in events if e.ticket_id != "101"
        )
        reasons = sorted(letter.reason for letter in letters)
        assert reasons[0] == "RuntimeError: database on fire"
        assert reasons[1].startswith("TicketReceived invalid")
        assert attempts["101"] == 2  # retried once, then dead-lettered
        assert all(n == 1 for ticket, n in attempts.items() if ticket != "101")  # acked once
        assert sorted(counted) == sorted((c.ticket_id, False) for c in classified)
        # counted as a raise would be: the OporaHandlerErrors alert reads this counter
        failures = {
            sample.labels["exception_type"]: sample.value
            for metric in registry.collect()
            if metric.name == "faststream_received_processed_messages_exceptions"
            for sample in metric.samples
            if sample.name.endswith("_total")
            and sample.labels["handler"] == "opora.ev.*.ticket.*.received"
        }
        assert failures == {"RuntimeError": 2.0, "ValidationError": 1.0}
        published = {
            sample.labels["destination"]: sample.value
            for metric in registry.collect()
            if metric.name == "faststream_published_messages"
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels["status"] == "success"
        }
        assert published["opora.ev.*.ticket.*.classified"] == len(classified)


async def _letters(js, consumer: str, n: int) -> list[DeadLetter] | None:
    letters = await stored(js, subjects.dead_letter(consumer), DeadLetter)
    return letters if len(letters) >= n else None
