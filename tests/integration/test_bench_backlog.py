"""The benchmark's idle check counts the durable consumers' unfinished messages."""

import asyncio
import uuid
from types import SimpleNamespace

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from bench.bench_e2e import backlog
from opora_shared.testing.plugin import start_nats


async def test_a_durable_consumers_unfinished_messages_are_counted(tmp_path):
    server = start_nats(tmp_path / "store")  # its own: the check reads the monitoring port
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        name = f"OPORA_BACKLOGTEST_{uuid.uuid4().hex[:8]}"
        subject = f"backlogtest.{name}"
        await js.add_stream(StreamConfig(name=name, subjects=[f"{subject}.>"]))
        bench = SimpleNamespace(nats=server)
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
        assert found >= 5  # the durable's five
        await js.delete_consumer(name, "worker")
        mine = await asyncio.to_thread(backlog, bench)
        assert found - mine >= 5
        await tap.unsubscribe()
    finally:
        await nc.close()
        server.stop()
