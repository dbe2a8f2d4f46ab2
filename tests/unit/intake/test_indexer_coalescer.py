"""The indexer's coalescer: the handlers of one batch share one refresh of their ticket."""

import asyncio

import pytest

from opora_intake.indexer import Coalescer


class TestCoalescer:
    async def test_callers_that_join_before_the_run_share_it(self):
        coalescer, ran = Coalescer(), []

        async def job():
            ran.append("x")

        await asyncio.gather(*(coalescer.run(("t", "1"), job) for _ in range(5)))
        assert (ran, coalescer.runs, coalescer.calls) == (["x"], 1, 5)

    async def test_other_tickets_run_on_their_own(self):
        coalescer, ran = Coalescer(), []

        def job(ticket):
            async def refresh():
                ran.append(ticket)

            return refresh

        await asyncio.gather(*(coalescer.run(("t", str(n % 2)), job(n % 2)) for n in range(4)))
        assert sorted(ran) == [0, 1]

    async def test_a_caller_that_comes_once_the_run_began_gets_a_new_run(self):
        coalescer, started, release = Coalescer(), asyncio.Event(), asyncio.Event()
        runs = []

        async def slow():
            runs.append("first")
            started.set()
            await release.wait()

        async def quick():
            runs.append("second")

        first = asyncio.create_task(coalescer.run(("t", "1"), slow))
        await started.wait()
        second = asyncio.create_task(coalescer.run(("t", "1"), quick))
        release.set()
        await asyncio.gather(first, second)
        assert runs == ["first", "second"]

    async def test_a_failure_reaches_every_joined_caller(self):
        coalescer = Coalescer()

        async def broken():
            raise RuntimeError("NATS is away")

        results = await asyncio.gather(
            *(coalescer.run(("t", "1"), broken) for _ in range(3)), return_exceptions=True
        )
        assert [type(r) for r in results] == [RuntimeError] * 3
        with pytest.raises(RuntimeError):
            await coalescer.run(("t", "1"), broken)
