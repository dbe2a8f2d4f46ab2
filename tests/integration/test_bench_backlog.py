"""The benchmark's idle check counts the durable consumers' unfinished messages."""

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from bench.bench_e2e import backlog


async def test_a_durable_consumers_unfinished_messages_are_counted(nats_server, js):
    if nats_server.server is None:
        pytest.skip("needs the suite's own nats-server (its monitoring port); Docker runs lack it")
    name = f"OPORA_BACKLOGTEST_{uuid.uuid4().hex[:8]}"
    subject = f"backlogtest.{name}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{subject}.>"]))
    try:
        bench = SimpleNamespace(nats=nats_server.server)
        for n in range(5):
            await js.publish(f"{subject}.{n}", b"x")
        # a history tap beside it (an ordered push consumer): ephemeral, left out
        tap = await js.subscribe(f"{subject}.>", stream=name, ordered_consumer=True)
        await js.add_consumer(
            name,
            ConsumerConfig(
                durable_name="worker",
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
            ),
        )
        found = await asyncio.to_thread(backlog, bench)
        assert found >= 5  # the durable's five (other tests' consumers may add theirs)
        await js.delete_consumer(name, "worker")
        mine = await asyncio.to_thread(backlog, bench)
        assert found - mine >= 5
        await tap.unsubscribe()
    finally:
        await js.delete_stream(name)
