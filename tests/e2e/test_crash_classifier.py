"""kill -9 the classifier with 200 tickets in flight, restart it: nothing lost, nothing twice."""

import asyncio
import shutil
from collections import Counter

import httpx
import nats
import pytest

from opora_shared import subjects
from opora_shared.events import NotificationSent, TicketClassified
from opora_shared.testing.waiting import poll_until, wait_for

from .conftest import dump_logs, launch

TICKETS = 200


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crash")
    # A short ack wait so that what the dead classifier held is redelivered within seconds.
    handle = launch(tmp, OPORA_ACK_WAIT_S="2")
    yield handle
    handle.stack.stop()
    handle.nats.stop()
    shutil.rmtree(tmp / "nats", ignore_errors=True)


async def per_ticket_counts(url: str, event_cls) -> Counter[str]:
    """How many events of one class each ticket has in the stream (from the subject index)."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(
            subjects.EVENTS_STREAM, subjects_filter=subjects.event_pattern(event_cls)
        )
    finally:
        await nc.close()
    return Counter({subject.split(".")[4]: n for subject, n in (info.state.subjects or {}).items()})


async def post_all(http: str) -> list[str]:
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=http, limits=limits, timeout=30) as client:

        async def one(i: int) -> str:
            response = await client.post(
                "/v1/tickets",
                json={
                    "from": "anna@romashka.ru",
                    "subject": f"Принтер {i} не печатает",
                    "body": "Замяло бумагу",
                },
            )
            assert response.status_code == 202
            return str(response.json()["id"])

        return list(await asyncio.gather(*[one(i) for i in range(TICKETS)]))


async def _at_least(count, minimum: int) -> bool:
    return await count >= minimum


class TestClassifierCrash:
    async def test_every_ticket_classified_and_acknowledged_exactly_once(self, running):
        classifier = running.stack.services["classifier"]
        url = running.nats.url
        posting = asyncio.create_task(post_all(running.http))

        async def some_classified() -> int:
            return len(await per_ticket_counts(url, TicketClassified))

        await wait_for(
            lambda: _at_least(some_classified(), 5),
            timeout=20,
            interval=0.01,
            message="first classifications",
        )
        classifier.kill9()
        classified_at_kill = await some_classified()
        ids = await posting
        assert len(set(ids)) == TICKETS
        assert classified_at_kill < TICKETS, "the classifier finished before it was killed"

        classifier.start()

        async def all_acknowledged() -> bool:
            return len(await per_ticket_counts(url, NotificationSent)) >= TICKETS

        try:
            await wait_for(all_acknowledged, timeout=60, interval=0.1, message="all acknowledged")
        except TimeoutError:
            dump_logs(running.var.parent / "logs")
            raise

        classified = await per_ticket_counts(url, TicketClassified)
        sent = await per_ticket_counts(url, NotificationSent)
        print(f"\nclassified before kill -9: {classified_at_kill}/{TICKETS}")
        assert set(classified) >= set(ids)
        assert all(classified[t] == 1 for t in ids), "a ticket was classified twice"
        assert all(sent[t] == 1 for t in ids), "a ticket was acknowledged twice"
        files = poll_until(lambda: list(running.outbox.glob("*.eml")), timeout=5)
        per_ticket_files = Counter(path.name.split("-", 1)[0] for path in files)
        assert all(per_ticket_files[t] == 1 for t in ids)
        assert classifier.running
