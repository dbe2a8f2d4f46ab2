"""kill -9 the sla-timer at random moments during 500 live timers: every event exactly once."""

import asyncio
import os
import random
import shutil
from collections import Counter
from datetime import UTC, datetime

import nats
import pytest

from opora_shared import subjects
from opora_shared.events import SlaBreached
from opora_shared.nats.streams import provision
from opora_shared.stack import ServiceProcess
from opora_shared.testing.contracts import write_fast_contracts
from opora_shared.testing.factories import make_ticket_classified
from opora_shared.testing.plugin import start_nats
from opora_shared.testing.stored import event_counts, stored
from opora_shared.testing.waiting import wait_for
from opora_shared.vocabulary import Priority

TICKETS = 500
TENANT = "acme"
EXPECTED = {"armed": 1, "warning": 2, "breached": 2, "escalated": 2}


@pytest.fixture
async def world(tmp_path):
    server = start_nats(tmp_path / "nats" / "store")
    nc = await nats.connect(server.url)
    await provision(nc.jetstream())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPORA_")}
    env |= {
        "OPORA_NATS_URL": server.url,
        "OPORA_METRICS_PORT": "0",
        "OPORA_ACK_WAIT_S": "2",
        "OPORA_CONTRACTS_DIR": str(write_fast_contracts(tmp_path / "contracts", TENANT)),
    }
    service = ServiceProcess("sla-timer", env, tmp_path / "sla-timer.log")
    yield nc, service, tmp_path
    service.stop()
    await nc.close()
    server.stop()
    shutil.rmtree(tmp_path / "nats", ignore_errors=True)


async def counts(js) -> dict[str, Counter[str]]:
    """Per ticket, how many SLA events of each name the stream holds."""
    return await event_counts(js, f"{subjects.EVENTS_PREFIX}.{TENANT}.sla.>")


async def publish_classified(js, ids: list[str], priorities) -> None:
    """Classify these tickets now (the sla-timer arms their clocks)."""
    now = datetime.now(UTC)
    for ticket_id in ids:
        event = make_ticket_classified(
            tenant=TENANT, ticket_id=ticket_id, occurred_at=now, priority=priorities()
        )
        await js.publish(
            subjects.event_subject(event),
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": str(event.event_id)},
        )


class TestSlaTimerCrash:
    async def test_every_expected_event_arrives_exactly_once(self, world):
        nc, service, tmp = world
        js = nc.jetstream()
        rng = random.Random(2026)  # noqa: S311 - test data
        service.start()
        ids = [str(10**9 + i) for i in range(TICKETS)]
        await publish_classified(js, ids, lambda: rng.choice(list(Priority)))
        kills = 0
        for _ in range(3):  # three crashes at random moments while timers fall due
            await asyncio.sleep(rng.uniform(0.8, 2.5))  # the random moment of the crash
            service.kill9()
            kills += 1
            await asyncio.sleep(rng.uniform(0.5, 2.0))  # down: timers fall due meanwhile
            service.start()

        async def complete() -> bool:
            per_ticket = await counts(js)
            return len(per_ticket) == TICKETS and all(
                sum(c.values()) >= sum(EXPECTED.values()) for c in per_ticket.values()
            )

        try:
            await wait_for(complete, timeout=90, interval=0.5, message="every SLA event")
        except TimeoutError:
            print((tmp / "sla-timer.log").read_text()[-5000:])
            raise
        await asyncio.sleep(2.5)  # longer than the ack wait: any redelivered duplicate shows
        per_ticket = await counts(js)
        wrong = {t: dict(c) for t, c in per_ticket.items() if dict(c) != EXPECTED}
        assert kills == 3
        assert set(per_ticket) == set(ids)
        assert wrong == {}
        breaches = await stored(
            js, f"{subjects.EVENTS_PREFIX}.{TENANT}.sla.*.breached", SlaBreached
        )
        late = [b.late_by_s for b in breaches]
        print(f"\nbreaches: {len(late)}, fired >1 s late (while down): {sum(x > 1 for x in late)}")
        assert max(late) > 0.5, "no timer fell due while the service was down"


class TestSlaTimerReplicas:
    async def test_two_replicas_share_the_timers_and_a_dead_ones_share_moves(self, world):
        nc, first, tmp = world
        js = nc.jetstream()
        second = ServiceProcess("sla-timer", first.env, tmp / "sla-timer-2.log")
        first.start()
        second.start()
        try:
            ids = [str(2 * 10**9 + i) for i in range(200)]
            await publish_classified(js, ids, lambda: Priority.P2)

            async def some_fired() -> bool:
                return any(c["warning"] for c in (await counts(js)).values())

            await wait_for(some_fired, timeout=20, message="the first warnings")
            second.kill9()  # dies for good; its unacknowledged firings go to the survivor

            async def complete() -> bool:
                per_ticket = await counts(js)
                return len(per_ticket) == len(ids) and all(
                    sum(c.values()) >= sum(EXPECTED.values()) for c in per_ticket.values()
                )

            await wait_for(complete, timeout=60, interval=0.5, message="every SLA event")
            await asyncio.sleep(2.5)  # longer than the ack wait: any duplicate shows
            per_ticket = await counts(js)
            assert {t: dict(c) for t, c in per_ticket.items() if dict(c) != EXPECTED} == {}
            assert first.running
        finally:
            second.stop()
