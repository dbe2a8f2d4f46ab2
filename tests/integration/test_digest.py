"""The daily digest against a real NATS: tickets read from the ticket index (KV), each digest
recorded in the notifier's KV ledger, so a person gets one per tenant and day however often the
scan runs and however many replicas run it. The clock is the test's; nothing waits on time.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from faststream.nats import NatsBroker
from prometheus_client import CollectorRegistry

from opora_notifier import handlers
from opora_notifier.app import create_app
from opora_notifier.channels.outbox import OutboxChannel
from opora_notifier.handlers import Notifier
from opora_notifier.metrics import NotifierMetrics
from opora_notifier.notices import Medium
from opora_notifier.planning import Links
from opora_notifier.settings import NotifierSettings
from opora_shared.contract_store import ContractStore
from opora_shared.events import Actor, TicketAssigned, TicketUpdated
from opora_shared.mail_ids import parse_outbound
from opora_shared.nats.broker import make_broker
from opora_shared.nats.publish import publish_event
from opora_shared.testing.factories import (
    make_ticket_classified,
    make_ticket_received,
    unique_ticket_id,
)
from opora_shared.testing.waiting import wait_for
from opora_shared.ticket_index import TicketIndex
from opora_shared.vocabulary import Priority, TicketChange

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
THURSDAY_0859 = datetime(2026, 11, 26, 5, 59, tzinfo=UTC)  # Moscow time is UTC+3
THURSDAY_0901 = datetime(2026, 11, 26, 6, 1, tzinfo=UTC)
THURSDAY_1700 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
FRIDAY_0901 = datetime(2026, 11, 27, 6, 1, tzinfo=UTC)
SATURDAY_1000 = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    tenant: str
    broker: NatsBroker
    clock: Clock
    outbox: Path
    replica: Callable[[], Awaitable[Notifier]]

    def digests(self) -> list[EmailMessage]:
        return [
            message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted((self.outbox / "team").glob("digest-*.eml"))
        ]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.digests() if m["To"].addresses[0].addr_spec == address]


def write_contract(directory: Path, tenant: str) -> None:
    """Romashka's contract (Moscow, working days) under a fresh tenant, with a 09:00 digest."""
    data = yaml.safe_load((DEPLOY / "contracts" / "romashka.yml").read_text(encoding="utf-8"))
    data.update(
        tenant=tenant,
        name=f"Test {tenant}",
        domains=[f"{tenant}.test"],
        vip_senders=[],
        approver=f"boss@{tenant}.test",
        digest={"at": "09:00", "to": "assignees"},
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{tenant}.yml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")


@pytest.fixture
async def world(nats_url, tmp_path, js) -> AsyncIterator[World]:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    write_contract(tmp_path / "contracts", tenant)
    settings = NotifierSettings(
        nats_url=nats_url,
        var_dir=tmp_path,
        contracts_dir=tmp_path / "contracts",
        signing_key="digest-test-signing-key-0123456",
        public_url="https://support.example.com",
    )
    clock = Clock(THURSDAY_0859)
    brokers: list[NatsBroker] = []

    async def replica() -> Notifier:
        """One notifier replica (its own connection and memory), consuming nothing."""
        broker = make_broker(settings, service="notifier", registry=CollectorRegistry())
        contracts = ContractStore(settings.contracts_dir, DEPLOY / "team.yml")
        contracts.load()  # this tenant only: the shared bucket is not watched here
        notifier = handlers.register(
            broker,
            settings,
            contracts=contracts,
            channels={Medium.EMAIL: OutboxChannel(tmp_path / "outbox")},
            links=Links(
                public_url=settings.public_url,
                ticket_url="{public_url}/t/{tenant}/{ticket_id}",
                mail_domain="opora.local",
            ),
            metrics=NotifierMetrics(CollectorRegistry()),
            clock=clock,
        )
        await broker.connect()
        brokers.append(broker)
        return notifier

    first = await replica()
    try:
        yield World(tenant, first.broker, clock, tmp_path / "outbox", replica)
    finally:
        for broker in brokers:
            await broker.stop()


async def ticket(world: World, js, priority: Priority, assignee: str | None = None, *changes):
    """A ticket of the world's tenant, indexed as the intake's indexer would."""
    ticket_id = unique_ticket_id()
    at = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    events = [
        make_ticket_received(tenant=world.tenant, ticket_id=ticket_id, occurred_at=at),
        make_ticket_classified(
            tenant=world.tenant, ticket_id=ticket_id, occurred_at=at, priority=priority
        ),
    ]
    if assignee:
        events.append(
            TicketAssigned(
                event_id=uuid.uuid4(),
                occurred_at=at,
                tenant=world.tenant,
                ticket_id=ticket_id,
                assignee=assignee,
                assignee_email=f"{assignee}@opora.local",
                priority=priority,
                rule="skill_least_load",
            )
        )
    for change in changes:
        events.append(
            TicketUpdated(
                event_id=uuid.uuid4(),
                occurred_at=at,
                tenant=world.tenant,
                ticket_id=ticket_id,
                change=change,
                actor=Actor(kind="engineer", id="maria"),
            )
        )
    for event in events:
        await publish_event(world.broker, event)
    await TicketIndex(js).refresh(world.tenant, ticket_id)
    return ticket_id


class TestDailyDigest:
    async def test_once_a_day_per_person_from_the_contracts_time(self, world, js):
        notifier = await world.replica()
        mine_p3 = await ticket(world, js, Priority.P3, "maria")
        mine_p4 = await ticket(world, js, Priority.P4, "maria")
        nobodys = await ticket(world, js, Priority.P3)
        urgent = await ticket(world, js, Priority.P1, "maria")
        done = await ticket(world, js, Priority.P3, "alexey", TicketChange.RESOLVED)

        assert await notifier.send_digests() == 0  # 08:59 in Moscow: not yet
        assert world.digests() == []

        world.clock.now = THURSDAY_0901
        assert await notifier.send_digests() == 2  # maria, and the lead for the unassigned one
        (maria,) = world.to("maria@opora.local")
        (lead,) = world.to("lead@opora.local")
        text = maria.get_body(("plain",)).get_content()
        assert f"#{mine_p3} P3" in text
        assert f"#{mine_p4} P4" in text
        assert text.index(f"#{mine_p3}") < text.index(f"#{mine_p4}")  # most urgent first
        assert f"https://support.example.com/t/{world.tenant}/{mine_p3}" in text
        for absent in (urgent, done, nobodys):
            assert f"#{absent}" not in text
        assert f"#{nobodys} P3" in lead.get_body(("plain",)).get_content()
        assert maria["Subject"].startswith(f"Сводка 26.11.2026: Test {world.tenant}")
        assert "[#" not in maria["Subject"]
        assert maria["X-Opora-Ticket"] is None
        assert maria["Auto-Submitted"] == "auto-generated"
        assert maria.get_content_type() == "multipart/alternative"
        assert parse_outbound(maria["Message-ID"], "opora.local") is None  # no ticket to thread

        world.clock.now = THURSDAY_1700  # later scans the same day
        assert await notifier.send_digests() == 0
        assert await (await world.replica()).send_digests() == 0  # another replica, or a restart
        assert len(world.digests()) == 2

        world.clock.now = FRIDAY_0901
        assert await notifier.send_digests() == 2
        assert len(world.to("maria@opora.local")) == 2

        world.clock.now = SATURDAY_1000  # not a working day of the contract
        assert await notifier.send_digests() == 0
        assert len(world.digests()) == 4

    async def test_nothing_open_sends_nothing(self, world, js):
        notifier = await world.replica()
        await ticket(world, js, Priority.P3, "maria", TicketChange.RESOLVED)
        world.clock.now = THURSDAY_0901
        assert await notifier.send_digests() == 0
        assert world.digests() == []


class TestTheService:
    async def test_the_notifier_app_sends_due_digests_on_its_own(self, nats_url, tmp_path, js):
        tenant = f"t{uuid.uuid4().hex[:10]}"
        write_contract(tmp_path / "contracts", tenant)
        settings = NotifierSettings(
            nats_url=nats_url,
            var_dir=tmp_path,
            contracts_dir=tmp_path / "contracts",
            signing_key="digest-test-signing-key-0123456",
            digest_scan_s=0.05,
        )
        clock = Clock(THURSDAY_0859)  # the scans run, nothing is due yet
        app = create_app(settings, clock=clock, registry=CollectorRegistry())
        await app.start()
        try:
            world = World(tenant, app.broker, clock, tmp_path / "outbox", None)
            mine = await ticket(world, js, Priority.P4, "oleg")
            clock.now = THURSDAY_0901
            (digest,) = await wait_for(world.digests, timeout=10, message="the scan sent it")
        finally:
            await app.stop()
        assert digest["To"].addresses[0].addr_spec == "oleg@opora.local"
        assert f"#{mine} P4" in digest.get_body(("plain",)).get_content()
