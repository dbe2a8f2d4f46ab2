"""Histories extended from a consumer's deliveries, and read from the stream where one may miss."""

import asyncio
import gc
import uuid

from opora_shared import subjects
from opora_shared.events import TicketClassified, TicketReceived, TicketUpdated
from opora_shared.nats import history
from opora_shared.nats.history import Feed, tap, ticket_events, untap
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received

from .test_ticket_index import resolved


async def publish(js, *events) -> list[int]:
    acks = [
        await js.publish(subjects.event_subject(e), e.model_dump_json().encode()) for e in events
    ]
    return [ack.seq for ack in acks]


def counting(js):
    gets: list[int] = []
    get_msg = js.get_msg

    async def counted(stream, *args, **kwargs):
        gets.append(kwargs.get("seq"))
        return await get_msg(stream, *args, **kwargs)

    js.get_msg = counted
    return gets


async def deliveries(js, tenant: str, count: int):
    sub = await js.pull_subscribe(
        subjects.tenant_events(tenant), durable=f"feed-{tenant}", stream=subjects.EVENTS_STREAM
    )
    messages = []
    while len(messages) < count:
        messages += await sub.fetch(count - len(messages), timeout=5)
    return messages


class TestFeed:
    async def test_delivered_events_are_the_history_and_nothing_is_read_back(self, js):
        tenant = f"f{uuid.uuid4().hex[:8]}"
        tickets = [make_ticket_received(tenant=tenant) for _ in range(3)]
        first = [
            *tickets,
            *(make_ticket_classified(tenant=tenant, ticket_id=t.ticket_id) for t in tickets),
        ]
        seqs = await publish(js, *first, resolved(tickets[0]))
        Feed().take(js, await deliveries(js, tenant, len(seqs)))
        gets = counting(js)
        history = await ticket_events(js, tickets[0].ticket_id, tenant=tenant, until=seqs[-1])
        assert [type(e) for e in history] == [TicketReceived, TicketClassified, TicketUpdated]
        other = await ticket_events(js, tickets[2].ticket_id, tenant=tenant, until=seqs[5])
        assert [e.event_id for e in other] == [first[2].event_id, first[5].event_id]
        assert gets == []
        # without a bound the read still asks the stream for anything newer
        await ticket_events(js, tickets[0].ticket_id, tenant=tenant)
        assert gets == [seqs[-1] + 1]

    async def test_after_a_delivery_that_went_elsewhere_the_history_is_read(self, js):
        tenant = f"f{uuid.uuid4().hex[:8]}"
        a, b = make_ticket_received(tenant=tenant), make_ticket_received(tenant=tenant)
        events = [
            a,
            b,
            make_ticket_classified(tenant=tenant, ticket_id=a.ticket_id),  # to another replica
            make_ticket_classified(tenant=tenant, ticket_id=b.ticket_id),
            resolved(a),
            resolved(b),
        ]
        c = make_ticket_received(tenant=tenant)
        events += [c, make_ticket_classified(tenant=tenant, ticket_id=c.ticket_id)]
        seqs = await publish(js, *events)
        delivered = await deliveries(js, tenant, len(seqs))
        Feed().take(js, delivered[:2] + delivered[3:])
        gets = counting(js)
        history = await ticket_events(js, a.ticket_id, tenant=tenant, until=seqs[4])
        assert [e.event_id for e in history] == [
            events[0].event_id,
            events[2].event_id,
            events[4].event_id,
        ]
        assert gets == [seqs[0] + 1, seqs[2] + 1]  # from where the remembered history ended
        # b's history also ended before the gap: the missing delivery could have been b's
        gets.clear()
        history = await ticket_events(js, b.ticket_id, tenant=tenant, until=seqs[5])
        assert [e.event_id for e in history] == [
            events[1].event_id,
            events[3].event_id,
            events[5].event_id,
        ]
        assert gets == [seqs[1] + 1, seqs[3] + 1]
        # a ticket received after the gap is whole again
        gets.clear()
        history = await ticket_events(js, c.ticket_id, tenant=tenant, until=seqs[7])
        assert [e.event_id for e in history] == [events[6].event_id, events[7].event_id]
        assert gets == []

    async def test_a_redelivery_keeps_the_run_and_adds_nothing(self, js):
        tenant = f"f{uuid.uuid4().hex[:8]}"
        a = make_ticket_received(tenant=tenant)
        seqs = await publish(js, a, make_ticket_classified(tenant=tenant, ticket_id=a.ticket_id))
        sub = await js.pull_subscribe(
            subjects.tenant_events(tenant), durable=f"feed-{tenant}", stream=subjects.EVENTS_STREAM
        )
        feed = Feed()
        (received,) = await sub.fetch(1, timeout=5)
        await received.nak()
        again = await sub.fetch(1, timeout=5)
        more = await sub.fetch(1, timeout=5)
        assert sorted(m.metadata.num_delivered for m in again + more) == [1, 2]
        feed.take(js, [received, *again, *more])
        gets = counting(js)
        history = await ticket_events(js, a.ticket_id, tenant=tenant, until=seqs[1])
        assert [type(e) for e in history] == [TicketReceived, TicketClassified]
        assert gets == []


class TestTap:
    async def test_a_tapped_connection_reads_nothing_for_a_ticket_it_was_fed(self, js):
        tenant = f"f{uuid.uuid4().hex[:8]}"
        subscription = await tap(js)
        try:
            a = make_ticket_received(tenant=tenant)
            events = [a, make_ticket_classified(tenant=tenant, ticket_id=a.ticket_id)]
            seqs = await publish(js, *events, resolved(a))
            gets = counting(js)
            # the classified event in hand: its history as far as the tap has got, no reads
            history = await ticket_events(js, a.ticket_id, tenant=tenant, seen=seqs[1])
            assert [e.event_id for e in history][:2] == [e.event_id for e in events]
            assert gets == []
            # a ticket the tap joined late (its receipt came before): read from the stream
            await untap(js, subscription)
            late = make_ticket_received(tenant=tenant)
            late_seqs = await publish(js, late)
            subscription = await tap(js)
            more = await publish(
                js, make_ticket_classified(tenant=tenant, ticket_id=late.ticket_id)
            )
            history = await ticket_events(js, late.ticket_id, tenant=tenant, seen=more[0])
            assert [type(e) for e in history] == [TicketReceived, TicketClassified]
            assert gets[0] == 1  # from the start: the tap never saw its receipt
            assert late_seqs[0] < more[0]
        finally:
            await untap(js, subscription)

    async def test_without_a_tap_a_read_waits_a_moment_at_most_then_reads(self, js, monkeypatch):
        from opora_shared.nats import history

        tenant = f"f{uuid.uuid4().hex[:8]}"
        subscription = await tap(js)
        await untap(js, subscription)  # gone: nothing will feed the histories
        feed = history.Feed()
        history._taps[js._nc] = feed  # a tap that stopped delivering
        try:
            loop = asyncio.get_running_loop()
            for n in range(4):  # three wait out TAP_WAIT_S, then read; then no more waiting
                a = make_ticket_received(tenant=tenant)
                (seq,) = await publish(js, a)
                started = loop.time()
                found = await ticket_events(js, a.ticket_id, tenant=tenant, seen=seq)
                waited = loop.time() - started
                assert [e.event_id for e in found] == [a.event_id]
                if n < 3:
                    assert waited >= history.TAP_WAIT_S * 0.9
                else:
                    assert waited < history.TAP_WAIT_S
        finally:
            history._taps.pop(js._nc, None)

    async def test_an_unreadable_event_fed_is_skipped_when_read_as_from_the_stream(self, js):
        tenant = f"f{uuid.uuid4().hex[:8]}"
        subscription = await tap(js)
        try:
            a = make_ticket_received(tenant=tenant)
            await publish(js, a)
            ack = await js.publish(
                f"{subjects.EVENTS_PREFIX}.{tenant}.ticket.{a.ticket_id}.x", b"{"
            )
            history = await ticket_events(js, a.ticket_id, tenant=tenant, seen=ack.seq)
            assert [e.event_id for e in history] == [a.event_id]
        finally:
            await untap(js, subscription)


class TestRemembered:
    async def test_histories_are_remembered_as_json_that_the_collector_does_not_track(self, js):
        """Parsed events kept for thousands of tickets made the garbage collector's full
        collections walk about 20 objects per ticket: pauses of 50-100 ms."""
        tenant = f"f{uuid.uuid4().hex[:8]}"
        a = make_ticket_received(tenant=tenant)
        seqs = await publish(js, a, make_ticket_classified(tenant=tenant, ticket_id=a.ticket_id))
        first = await ticket_events(js, a.ticket_id, tenant=tenant, until=seqs[1])
        again = await ticket_events(js, a.ticket_id, tenant=tenant, until=seqs[1])
        assert [type(e) for e in again] == [TicketReceived, TicketClassified]
        assert again == first
        assert again[0] is not first[0]  # parsed anew
        known = history._cache(js)[(tenant, a.ticket_id)]
        assert all(type(item) is bytes for item in known.events)
        assert not any(gc.is_tracked(item) for item in known.events)
