"""Stopping a service's background tasks, even one whose first cancellation was swallowed."""

import asyncio
import contextlib

from opora_shared.service import stop_tasks


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
