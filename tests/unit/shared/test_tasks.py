"""Stopping background tasks, even one whose first cancellation was swallowed (nats-py)."""

import asyncio
import contextlib

from faststream.nats import NatsBroker
from prometheus_client import CollectorRegistry

from opora_shared.nats.broker import durable_consumer
from opora_shared.nats.consumer_metrics import ConsumerGauges
from opora_shared.settings import OporaSettings
from opora_shared.tasks import stop_tasks


async def swallows_the_first_cancel(ticks: list[int]) -> None:
    """Like a loop whose await landed in nats-py's flush, which swallows CancelledError."""
    with contextlib.suppress(asyncio.CancelledError):  # the cancellation is lost here
        await asyncio.Event().wait()
    while True:
        ticks.append(1)
        await asyncio.sleep(0.01)


async def fails() -> None:
    raise RuntimeError("boom")


class TestStopTasks:
    async def test_a_task_that_swallowed_its_cancel_is_cancelled_again(self):
        ticks: list[int] = []
        stubborn = asyncio.create_task(swallows_the_first_cancel(ticks))
        plain = asyncio.create_task(asyncio.Event().wait())
        await asyncio.sleep(0)  # both are waiting
        await asyncio.wait_for(stop_tasks([stubborn, plain]), timeout=5)
        assert stubborn.cancelled()
        assert plain.cancelled()
        assert ticks  # it did run on after the first cancel: the second one ended it

    async def test_finished_and_failed_tasks_are_fine(self):
        failed = asyncio.create_task(fails())
        await asyncio.wait([failed])
        await stop_tasks([failed])
        assert isinstance(failed.exception(), RuntimeError)
        await stop_tasks([])


class SwallowingJetStream:
    """consumer_info swallows the first cancel, as nats-py's request can; later ones end it."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.swallowed = 0

    async def consumer_info(self, stream: str, durable: str):
        self.asked.set()
        if self.swallowed:
            await asyncio.Event().wait()  # a second cancel goes through
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.swallowed += 1  # and on as if nothing happened
        msg = "no answer"
        raise TimeoutError(msg)


class TestConsumerGaugesStop:
    async def test_stop_ends_a_refresh_that_swallowed_its_cancel(self):
        """Stopping a service right after it started could wait for ever (6 in 300 real races)."""
        broker = NatsBroker()

        @broker.subscriber("opora.events.>", **durable_consumer(OporaSettings(), "some-durable"))
        async def handler(body: bytes) -> None: ...

        registry = CollectorRegistry()
        gauges = ConsumerGauges(registry)
        js = SwallowingJetStream()
        gauges.start(broker, js, interval=0.01)  # type: ignore[arg-type]
        await asyncio.wait_for(js.asked.wait(), timeout=5)
        stopping = asyncio.create_task(gauges.stop())
        done, _ = await asyncio.wait({stopping}, timeout=5)  # wait_for would cancel it again
        assert stopping in done
        assert js.swallowed == 1
        assert (
            registry.get_sample_value("opora_consumer_info_up") == 0
        )  # the loop did run on after the swallowed cancel
