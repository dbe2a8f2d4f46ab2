"""The notifier app in this process over a real NATS, mailing through a real SMTP relay and
posting to a real webhook receiver: who hears what, once, in order, and when.

Events are published directly (no classifier or sla-timer), with a clock the test moves.
The durable consumers are shared with the session's other tests, so assertions look only at
this test's tickets.
"""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry

from opora_notifier import signing
from opora_notifier.app import create_app
from opora_notifier.handlers import ACK, ESCALATED, SLA_BREACHED, SLA_WARNING, UNKNOWN, UPDATES
from opora_notifier.settings import NotifierSettings
from opora_notifier.testing import FakeReceiver, FakeRelay
from opora_shared import subjects
from opora_shared.approvals import ApprovalSigner
from opora_shared.events import (
    Actor,
    DeadLetter,
    NotificationFailed,
    NotificationSent,
    Requester,
    SlaArmed,
    SlaWarning,
    TicketAssigned,
    TicketUpdated,
)
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.testing.factories import (
    make_ticket_classified,
    make_ticket_received,
    unique_ticket_id,
)
from opora_shared.testing.waiting import wait_for
from opora_shared.vocabulary import (
    Category,
    Channel,
    Language,
    Priority,
    Scope,
    SlaTarget,
    TicketChange,
)

SIGNING_KEY = "app-test-signing-key-0123456789"
WEBHOOK_SECRET = "integrator-secret-0123456789"
DURABLES = (ACK, UNKNOWN, SLA_WARNING, SLA_BREACHED, ESCALATED, UPDATES)


class Clock:
    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self):
        return self.now


@pytest.fixture
def relay():
    server = FakeRelay().start()
    yield server
    server.stop()


@pytest.fixture
async def receiver():
    server = await FakeReceiver(hang_s=1.0).start()
    yield server
    await server.stop()


@pytest.fixture
def clock():
    return Clock()


class MovingClock:
    """Real time, from a chosen start."""

    def __init__(self, start: datetime):
        self.start, self.began = start, time.monotonic()

    @property
    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.began)

    def __call__(self):
        return self.now


def notifier_settings(nats_url, tmp_path, relay, receiver, **overrides) -> NotifierSettings:
    return NotifierSettings(
        **{
            "nats_url": nats_url,
            "var_dir": tmp_path,
            "smtp_relay_host": "127.0.0.1",
            "smtp_relay_port": relay.port,
            "smtp_relay_security": "none",
            "smtp_relay_timeout_s": 1.0,
            "webhook_url": f"{receiver.url}/opora",
            "webhook_secret": WEBHOOK_SECRET,
            "signing_key": SIGNING_KEY,
            "public_url": "https://support.example.com",
            "notify_attempts": 3,
            "notify_backoff_s": 0.01,
            "notify_backoff_max_s": 0.05,
            "http_timeout_s": 0.5,
            "hold_scan_s": 0.1,
            **overrides,
        }
    )


@pytest.fixture
async def notifier(nats_url, tmp_path, relay, receiver, clock, js):
    settings = notifier_settings(nats_url, tmp_path, relay, receiver)
    app = create_app(settings, clock=clock, registry=CollectorRegistry())
    await app.start()
    await idle(js)  # what earlier tests left in the shared consumers is done
    yield app
    await app.stop()


async def idle(js):
    async def caught_up():
        for durable in DURABLES:
            info = await js.consumer_info(subjects.EVENTS_STREAM, durable)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    await wait_for(caught_up, timeout=30, message="the notifier caught up")


def mails(relay, ticket_id, to=None):
    found = [m for m in relay.received if m["X-Opora-Ticket"] == ticket_id]
    return [m for m in found if to is None or m["To"].addresses[0].addr_spec == to]


def hooks(receiver, ticket_id):
    return [r for r in receiver.accepted if r.json()["ticket"]["id"] == ticket_id]


async def outcomes(js, ticket_id):
    events = await ticket_events(js, ticket_id)
    return [e for e in events if isinstance(e, NotificationSent | NotificationFailed)]


async def new_ticket(app, clock, **classified):
    """Received, classified and armed now; returns (ticket id, requester, client Message-ID)."""
    ticket_id = unique_ticket_id()
    requester = f"anna.{ticket_id}@romashka.ru"
    message_id = f"<request-{ticket_id}@romashka.ru>"
    broker = app.broker
    await publish_event(
        broker,
        make_ticket_received(
            ticket_id=ticket_id,
            occurred_at=clock.now,
            requester=Requester(email=requester, name="Анна"),
            subject="Не формируется отчёт в 1С",
            message_id=message_id,
        ),
    )
    priority = classified.setdefault("priority", Priority.P3)
    classified.setdefault("language", Language.RU)
    await publish_event(
        broker, make_ticket_classified(ticket_id=ticket_id, occurred_at=clock.now, **classified)
    )
    await publish_event(broker, armed(ticket_id, clock, priority))
    return ticket_id, requester, message_id


async def p3_warning_to_maria(app, clock) -> str:
    """A new P3 ticket assigned to maria, and its first-response warning; the ticket id."""
    ticket_id, _, _ = await new_ticket(app, clock)
    await publish_event(
        app.broker,
        TicketAssigned(
            event_id=uuid.uuid4(),
            occurred_at=clock.now,
            tenant="romashka",
            ticket_id=ticket_id,
            assignee="maria",
            assignee_email="maria@opora.local",
            priority=Priority.P3,
            rule="skill_least_load",
        ),
    )
    await publish_event(
        app.broker,
        SlaWarning(
            event_id=uuid.uuid4(),
            occurred_at=clock.now,
            tenant="romashka",
            ticket_id=ticket_id,
            target=SlaTarget.FIRST_RESPONSE,
            due_at=clock.now + timedelta(minutes=24),
            threshold=0.8,
        ),
    )
    return ticket_id


def armed(ticket_id, clock, priority, generation=1):
    return SlaArmed(
        event_id=uuid.uuid4(),
        occurred_at=clock.now,
        tenant="romashka",
        ticket_id=ticket_id,
        priority=priority,
        first_response_due=clock.now + timedelta(minutes=15),
        resolution_due=clock.now + timedelta(hours=4),
        timezone="Europe/Moscow",
        generation=generation,
    )


def update(ticket_id, clock, change, text=None, actor="engineer"):
    return TicketUpdated(
        event_id=uuid.uuid4(),
        occurred_at=clock.now,
        tenant="romashka",
        ticket_id=ticket_id,
        change=change,
        actor=Actor(kind=actor, id="maria"),
        text=text,
    )


class TestNewTicket:
    async def test_billable_p1_acknowledges_asks_the_approver_and_pages_on_duty(
        self, notifier, relay, receiver, clock, js
    ):
        ticket_id, requester, request_id = await new_ticket(
            notifier,
            clock,
            priority=Priority.P1,
            scope=Scope.BILLABLE,
            category=Category.ACCOUNTING_SOFTWARE,
        )
        await wait_for(
            lambda: len(mails(relay, ticket_id)) == 3 and hooks(receiver, ticket_id),
            timeout=10,
            message="ack, approval request, page",
        )
        (ack,) = mails(relay, ticket_id, requester)
        assert ack["In-Reply-To"] == request_id
        assert ack["Auto-Submitted"] == "auto-replied"
        assert ack.get_content_type() == "multipart/alternative"  # text and HTML, like all mail
        text = ack.get_body(("plain",)).get_content()
        assert "Мы запросили согласие" in " ".join(text.split())
        assert f"#{ticket_id}" in ack.get_body(("html",)).get_content()

        (request,) = mails(relay, ticket_id, "director@romashka.ru")
        signer = ApprovalSigner(SIGNING_KEY.encode())
        links = [
            line.split(": ", 1)[1]
            for line in request.get_body(("plain",)).get_content().splitlines()
            if "/v1/approvals/" in line
        ]
        decisions = set()
        for link in links:
            url = urlsplit(link)
            assert url.netloc == "support.example.com"
            claim = signer.verify(url.path.rsplit("/", 1)[1])
            assert (claim.tenant, claim.ticket_id, claim.approver) == (
                "romashka",
                ticket_id,
                "director@romashka.ru",
            )
            decisions.add(claim.decision)
        assert decisions == {"approve", "decline"}

        (page,) = mails(relay, ticket_id, "duty@opora.local")
        assert page["Subject"].startswith(f"[#{ticket_id}] P1 ")
        assert page["Reply-To"].addresses[0].addr_spec == "support@opora.local"

        (hook,) = hooks(receiver, ticket_id)
        assert hook.json()["trigger"] == "page"
        assert signing.verify(
            WEBHOOK_SECRET.encode(),
            timestamp=hook.headers["x-opora-timestamp"],
            body=hook.body,
            header=hook.headers["x-opora-signature"],
            now=clock.now.timestamp(),
        )

        async def four_sent():
            found = await outcomes(js, ticket_id)
            return found if len(found) == 4 else None

        sent = await wait_for(four_sent, timeout=10)
        assert [e.trigger for e in sent] == [
            "acknowledgement",
            "approval_request",
            "page",
            "page",
        ]
        assert {e.channel for e in sent} == {"smtp", "webhook"}

    async def test_a_trigger_seen_again_sends_nothing_twice(self, notifier, relay, clock, js):
        ticket_id, _, _ = await new_ticket(notifier, clock, priority=Priority.P2)
        await wait_for(lambda: len(mails(relay, ticket_id)) == 2, timeout=10)
        await publish_event(notifier.broker, armed(ticket_id, clock, Priority.P2))  # again
        await publish_event(notifier.broker, armed(ticket_id, clock, Priority.P1, 2))
        await idle(js)
        assert len(mails(relay, ticket_id)) == 2
        assert len(await outcomes(js, ticket_id)) == 3  # ack, page by mail, page by webhook


class TestClientNotices:
    async def test_an_engineers_reply_and_the_resolution_reach_the_client_a_note_never(
        self, notifier, relay, clock, js
    ):
        ticket_id, requester, request_id = await new_ticket(notifier, clock)
        await wait_for(lambda: mails(relay, ticket_id, requester), timeout=10)
        (ack,) = mails(relay, ticket_id, requester)
        for event in (
            update(ticket_id, clock, TicketChange.REPLIED, "Перезагрузите 1С, пожалуйста."),
            update(ticket_id, clock, TicketChange.NOTE, "клиент путает базы"),
            update(ticket_id, clock, TicketChange.RESOLVED, "Переиндексировали базу."),
        ):
            await publish_event(notifier.broker, event)
        await wait_for(lambda: len(mails(relay, ticket_id, requester)) == 3, timeout=10)
        await idle(js)
        _, reply, resolved = mails(relay, ticket_id, requester)
        assert reply.get_body(("plain",)).get_content().startswith("Перезагрузите 1С")
        ack_id = ack["Message-ID"].strip()  # long ids are folded
        assert reply["In-Reply-To"].strip() == ack_id
        assert reply["References"].split() == [request_id, ack_id]
        assert reply["Auto-Submitted"] is None
        assert reply["From"].addresses[0].addr_spec == "support@opora.local"
        assert "Переиндексировали базу." in resolved.get_body(("plain",)).get_content()
        everything = " ".join(m.as_string() for m in mails(relay, ticket_id))
        assert "путает" not in everything


class TestIntegrationTickets:
    async def test_an_alerts_tool_gets_no_mail_and_on_duty_is_paged(
        self, notifier, relay, clock, js
    ):
        ticket_id = unique_ticket_id()
        tool = "alertmanager@romashka"
        await publish_event(
            notifier.broker,
            make_ticket_received(
                ticket_id=ticket_id,
                occurred_at=clock.now,
                channel=Channel.INTEGRATION,
                requester=Requester(email=tool),
                subject="[FIRING:1] HostDown srv-db01",
                message_id=None,
            ),
        )
        await publish_event(
            notifier.broker,
            make_ticket_classified(
                ticket_id=ticket_id,
                occurred_at=clock.now,
                priority=Priority.P1,
                category=Category.MONITORING,
            ),
        )
        await publish_event(notifier.broker, armed(ticket_id, clock, Priority.P1))
        await publish_event(
            notifier.broker, update(ticket_id, clock, TicketChange.RESOLVED, "Диск расширен")
        )
        (page,) = await wait_for(lambda: mails(relay, ticket_id), timeout=10, message="the page")
        await idle(js)  # the resolution was handled too
        assert page["To"].addresses[0].addr_spec == "duty@opora.local"
        assert mails(relay, ticket_id, tool) == []
        assert [e.trigger for e in await outcomes(js, ticket_id)] == ["page", "page"]


class TestQuietHours:
    async def test_a_p3_warning_at_night_waits_for_the_engineers_shift(
        self, notifier, relay, receiver, clock, js
    ):
        clock.now = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)  # Friday 02:00 in Moscow
        ticket_id = await p3_warning_to_maria(notifier, clock)
        await wait_for(lambda: hooks(receiver, ticket_id), timeout=10, message="the webhook")
        await idle(js)  # the trigger is acknowledged: held in KV, not in the consumer
        assert mails(relay, ticket_id, "maria@opora.local") == []

        clock.now = datetime(2026, 11, 27, 6, 0, 1, tzinfo=UTC)  # 09:00:01, the shift starts
        (warning,) = await wait_for(
            lambda: mails(relay, ticket_id, "maria@opora.local"), timeout=10, message="warning"
        )
        assert "Скоро срок" in warning["Subject"]
        assert len(hooks(receiver, ticket_id)) == 1


class TestHolds:
    async def test_a_hold_made_here_is_replayed_when_due_not_at_the_next_scan(
        self, nats_url, tmp_path, relay, receiver, js
    ):
        # Friday 08:59:57 in Moscow: a P3 warning waits three seconds for the shift to start,
        # and the periodic scan for holds (every 30 s here, as by default) is far off
        clock = MovingClock(datetime(2026, 11, 27, 5, 59, 57, tzinfo=UTC))
        settings = notifier_settings(nats_url, tmp_path, relay, receiver, hold_scan_s=30.0)
        app = create_app(settings, clock=clock, registry=CollectorRegistry())
        await app.start()
        try:
            await idle(js)
            await asyncio.sleep(0.5)  # the first scan's wait has begun
            ticket_id = await p3_warning_to_maria(app, clock)
            await wait_for(lambda: hooks(receiver, ticket_id), timeout=10, message="the webhook")
            assert mails(relay, ticket_id, "maria@opora.local") == []  # held for the shift
            (warning,) = await wait_for(
                lambda: mails(relay, ticket_id, "maria@opora.local"),
                timeout=10,
                interval=0.05,
                message="the warning once the shift starts",
            )
            assert clock.now >= datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
            assert clock.now < datetime(2026, 11, 27, 6, 0, 5, tzinfo=UTC)  # not 30 s later
            assert "Скоро срок" in warning["Subject"]
        finally:
            await app.stop()


class TestFailures:
    async def test_a_receiver_that_keeps_failing_gets_a_dead_letter_and_an_event(
        self, notifier, receiver, clock, js
    ):
        receiver.fail_next("500", "500", "500")
        ticket_id, _, _ = await new_ticket(notifier, clock, priority=Priority.P1)

        async def failed():
            found = [e for e in await outcomes(js, ticket_id) if isinstance(e, NotificationFailed)]
            return found or None

        (event,) = await wait_for(failed, timeout=10, message="notification.failed")
        assert event.channel == "webhook"
        assert event.attempts == 3
        assert "HTTP 500" in event.reason
        raw = await js.get_last_msg(subjects.DLQ_STREAM, subjects.dead_letter(ACK), direct=True)
        letter = DeadLetter.model_validate_json(raw.data)
        assert event.notification_id in letter.reason
        assert letter.consumer == ACK
        sent = [e.trigger for e in await outcomes(js, ticket_id) if isinstance(e, NotificationSent)]
        assert sent == ["acknowledgement", "page"]  # the mails went; only the webhook failed
