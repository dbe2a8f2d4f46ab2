"""Exactly once against the real thing: the idempotency ledger in JetStream KV, outcomes on
the events stream, dead letters on their subject, a real SMTP relay and a real HTTP server
failing on purpose. Retries succeed, nothing is sent twice, a crash mid-send never mails a
client twice, and what cannot be delivered is dead-lettered with its reason."""

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from pathlib import Path

import httpx
import pytest
from faststream.nats import NatsBroker
from prometheus_client import CollectorRegistry

from opora_notifier.adapters.journal import StreamJournal
from opora_notifier.adapters.ledger_kv import KvLedger
from opora_notifier.channels.smtp import SmtpChannel
from opora_notifier.channels.telegram import TelegramChannel
from opora_notifier.delivery import DeliveryPolicy, Dispatcher, TriggerRef
from opora_notifier.ledger import DeliveryState
from opora_notifier.metrics import NotifierMetrics
from opora_notifier.notices import Medium
from opora_notifier.planning import Links, Planner, Reach, TicketFacts
from opora_notifier.rendering import Renderer
from opora_notifier.testing import FakeReceiver, FakeRelay
from opora_shared import subjects
from opora_shared.contracts import ContractBook
from opora_shared.events import (
    DeadLetter,
    NotificationFailed,
    NotificationSent,
    Requester,
    SlaArmed,
)
from opora_shared.nats.broker import jetstream
from opora_shared.nats.history import ticket_events
from opora_shared.team import ChatHandles, load_team
from opora_shared.testing.factories import (
    make_ticket_classified,
    make_ticket_received,
    unique_ticket_id,
)
from opora_shared.vocabulary import Priority

ROOT = Path(__file__).resolve().parents[2]
SENDER = Address(display_name="Opora Support", addr_spec="support@opora.local")
CONTRACTS = ContractBook.from_dir(ROOT / "deploy" / "contracts")


class Crash(BaseException):
    """The process dies here: nothing in the notifier catches it."""


class CrashAfterSend:
    """A channel that dies right after the real one handed the message over."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.medium, self.cte = inner.name, inner.medium, inner.cte
        self.deadline_s = inner.deadline_s

    async def send(self, out, commit):
        await self.inner.send(out, commit)
        raise Crash

    async def confirm(self, out):
        return await self.inner.confirm(out)

    async def close(self):
        pass


class Clock:
    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self):
        return self.now


@pytest.fixture
async def broker(nats_url):
    async with NatsBroker(nats_url) as connected:
        yield connected


@pytest.fixture
def relay():
    server = FakeRelay(hang_s=1.0).start()
    yield server
    server.stop()


@pytest.fixture
async def receiver():
    server = await FakeReceiver(hang_s=1.0).start()
    yield server
    await server.stop()


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=0.3) as client:
        yield client


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_dispatcher(broker, relay, receiver, http, clock):
    def make(*, smtp=None, attempts=4):
        channels = {
            Medium.EMAIL: smtp
            or SmtpChannel(
                host="127.0.0.1",
                port=relay.port,
                security="none",
                envelope_from="support@opora.local",
                timeout_s=0.3,
            ),
            Medium.TELEGRAM: TelegramChannel(http, api_url=receiver.url, token="1:T"),
        }
        return Dispatcher(
            ledger=KvLedger(jetstream(broker)),
            journal=StreamJournal(
                sent=broker, failed=broker, dead=broker, js=lambda: jetstream(broker)
            ),
            channels=channels,
            renderer=Renderer(),
            sender=SENDER,
            mail_domain="opora.local",
            clock=clock,
            metrics=NotifierMetrics(CollectorRegistry()),
            policy=DeliveryPolicy(attempts=attempts, backoff_s=0.01, backoff_max_s=0.05),
        )

    return make


def new_ticket(clock, *, priority=Priority.P1):
    """A P1 ticket of Romashka: the client's acknowledgement and the on-duty page."""
    team = load_team(ROOT / "deploy" / "team.yml")
    duty = team.duty().model_copy(update={"chat": ChatHandles(telegram_chat_id="-100777")})
    team = team.model_copy(
        update={"engineers": tuple(duty if e.id == "duty" else e for e in team.engineers)}
    )
    ticket_id = unique_ticket_id()
    received = make_ticket_received(
        ticket_id=ticket_id,
        occurred_at=clock.now,
        requester=Requester(email=f"anna.{ticket_id}@romashka.ru", name="Анна"),
    )
    classified = make_ticket_classified(
        ticket_id=ticket_id, occurred_at=clock.now, priority=priority
    )
    armed = SlaArmed(
        event_id=uuid.uuid4(),
        occurred_at=clock.now,
        tenant="romashka",
        ticket_id=ticket_id,
        priority=priority,
        first_response_due=clock.now + timedelta(minutes=15),
        resolution_due=clock.now + timedelta(hours=4),
        timezone="Europe/Moscow",
    )
    planner = Planner(
        team=team,
        reach=Reach(telegram=True),
        links=Links("https://support.example.com", "{public_url}/t/{ticket_id}", "opora.local"),
    )
    facts = TicketFacts.from_events([received, classified, armed])
    return planner.armed(facts, CONTRACTS.get("romashka"), armed)


TRIGGER = TriggerRef(
    consumer="notifier-test",
    subject="opora.ev.romashka.sla.1.armed",
    stream_seq=1,
    payload=b'{"x":1}',
)


async def outcomes(js, ticket_id):
    events = await ticket_events(js, ticket_id)
    return [e for e in events if isinstance(e, NotificationSent | NotificationFailed)]


class TestRetriesAgainstRealServers:
    async def test_smtp_451_and_http_500_reset_timeout_are_retried_and_sent_once(
        self, make_dispatcher, relay, receiver, js
    ):
        ack, page_mail, page_chat = new_ticket(Clock())
        relay.fail_next("451", "451")
        receiver.fail_next("500", "reset", "hang")
        report = await make_dispatcher().deliver([ack, page_mail, page_chat], TRIGGER)
        assert set(report.outcomes.values()) == {"sent"}
        assert len(relay.to(ack.recipient.address)) == 1
        assert len(relay.to("duty@opora.local")) == 1
        assert relay.attempts == 4  # two refusals, then two mails
        assert len(receiver.accepted) == 1
        assert receiver.attempts == 4
        sent = await outcomes(js, ack.ticket_id)
        assert sorted(e.trigger for e in sent) == ["acknowledgement", "page", "page"]
        assert all(isinstance(e, NotificationSent) for e in sent)
        assert sent[0].notification_id == ack.notification_id  # the client's first

    async def test_a_redelivered_trigger_sends_nothing_again(self, make_dispatcher, relay, js):
        notices = new_ticket(Clock())
        await make_dispatcher().deliver(notices, TRIGGER)
        again = await make_dispatcher().deliver(notices, TRIGGER)
        assert set(again.outcomes.values()) == {"duplicate"}
        assert len(relay.received) == 2
        assert len(await outcomes(js, notices[0].ticket_id)) == 3

    async def test_two_replicas_at_once_send_one_message(self, make_dispatcher, relay, js):
        notices = new_ticket(Clock())
        first, second = await asyncio.gather(
            make_dispatcher().deliver(notices, TRIGGER),
            make_dispatcher().deliver(notices, TRIGGER),
        )
        assert len(relay.to(notices[0].recipient.address)) == 1
        assert len(relay.to("duty@opora.local")) == 1
        waited = first.waiting | second.waiting
        assert waited <= {"busy"}
        assert len(await outcomes(js, notices[0].ticket_id)) == 3


class TestDeadLetters:
    async def test_after_the_last_try_it_is_failed_and_dead_lettered_with_the_reason(
        self, make_dispatcher, receiver, js
    ):
        *_, page_chat = new_ticket(Clock())
        receiver.fail_next("503", "503", "503")
        report = await make_dispatcher(attempts=3).deliver([page_chat], TRIGGER)
        assert report.outcomes == {page_chat.notification_id: "failed"}
        (failed,) = await outcomes(js, page_chat.ticket_id)
        assert isinstance(failed, NotificationFailed)
        assert failed.attempts == 3
        assert failed.reason == "Telegram answered HTTP 503: scripted 503 (after 3 tries)"
        raw = await js.get_last_msg(
            subjects.DLQ_STREAM, subjects.dead_letter("notifier-test"), direct=True
        )
        letter = DeadLetter.model_validate_json(raw.data)
        assert page_chat.notification_id in letter.reason
        assert "HTTP 503" in letter.reason
        assert base64.b64decode(letter.payload_b64) == b'{"x":1}'
        assert letter.stream_seq == 1
        assert receiver.accepted == []


class TestCrashMidSend:
    async def test_a_redelivery_after_a_crash_never_mails_the_client_twice(
        self, make_dispatcher, relay, broker, clock, js
    ):
        ack, *_ = new_ticket(clock)
        crashing = make_dispatcher()
        crashing.channels[Medium.EMAIL] = CrashAfterSend(crashing.channels[Medium.EMAIL])
        with pytest.raises(Crash):
            await crashing.deliver([ack], TRIGGER)
        assert len(relay.received) == 1  # the relay has it; the notifier died before noting it
        record, _ = await KvLedger(jetstream(broker)).get(ack.notification_id)
        assert record.state is DeliveryState.COMMITTING

        restarted = make_dispatcher()  # a new process, the trigger redelivered
        early = await restarted.deliver([ack], TRIGGER)
        assert early.waiting == {"busy"}  # the dead attempt's lease has not run out yet
        clock.now += timedelta(minutes=1)
        report = await restarted.deliver([ack], TRIGGER)
        assert report.outcomes == {ack.notification_id: "uncertain"}
        assert len(relay.received) == 1
        (failed,) = await outcomes(js, ack.ticket_id)
        assert isinstance(failed, NotificationFailed)
        assert failed.reason.startswith("uncertain: an attempt died after handing the message")
        record, _ = await KvLedger(jetstream(broker)).get(ack.notification_id)
        assert record.state is DeliveryState.FAILED

    async def test_an_engineers_page_is_sent_again_after_a_crash(
        self, make_dispatcher, relay, clock, js
    ):
        _, page_mail, _ = new_ticket(clock)
        crashing = make_dispatcher()
        crashing.channels[Medium.EMAIL] = CrashAfterSend(crashing.channels[Medium.EMAIL])
        with pytest.raises(Crash):
            await crashing.deliver([page_mail], TRIGGER)
        clock.now += timedelta(minutes=1)
        await make_dispatcher().deliver([page_mail], TRIGGER)
        copies = relay.to("duty@opora.local")
        assert len(copies) == 2
        assert copies[0]["Message-ID"] == copies[1]["Message-ID"]  # mail clients drop the copy
        (sent,) = await outcomes(js, page_mail.ticket_id)
        assert isinstance(sent, NotificationSent)
