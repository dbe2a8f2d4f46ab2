"""Classifier, sla-timer and notifier in this process, over a real NATS: one ticket, one ack."""

import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from prometheus_client import CollectorRegistry

from opora_classifier.app import create_app as classifier_app
from opora_classifier.settings import ClassifierSettings
from opora_notifier.app import create_app as notifier_app
from opora_notifier.settings import NotifierSettings
from opora_shared import subjects
from opora_shared.events import (
    Actor,
    NotificationSent,
    SlaArmed,
    TicketAssigned,
    TicketClassified,
    TicketUpdated,
)
from opora_shared.nats.history import last_event, ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.testing.factories import make_ticket_received
from opora_shared.testing.waiting import wait_for
from opora_shared.vocabulary import TicketChange
from opora_sla_timer.app import create_app as sla_app
from opora_sla_timer.settings import SlaTimerSettings


@pytest.fixture
async def services(nats_url, tmp_path):
    apps = [
        classifier_app(ClassifierSettings(nats_url=nats_url), registry=CollectorRegistry()),
        sla_app(SlaTimerSettings(nats_url=nats_url), registry=CollectorRegistry()),
        notifier_app(
            NotifierSettings(nats_url=nats_url, var_dir=tmp_path), registry=CollectorRegistry()
        ),
    ]
    for app in apps:
        await app.start()
    yield apps, tmp_path / "outbox"
    for app in apps:
        await app.stop()


class TestChain:
    async def test_ticket_is_classified_armed_and_acknowledged_once(self, services, js):
        apps, outbox = services
        received = make_ticket_received(
            tenant="vector",
            subject="Outlook keeps asking for password",
            body="Since this morning",
            requester={"email": "bob@vector-logistics.com"},
        )
        await publish_event(apps[0].broker, received)
        sent = await wait_for(
            lambda: last_event(js, NotificationSent, "vector", received.ticket_id),
            timeout=10,
            message="acknowledgement",
        )
        classified = await last_event(js, TicketClassified, "vector", received.ticket_id)
        armed = await last_event(js, SlaArmed, "vector", received.ticket_id)
        assert classified.category == "email"
        assert classified.language == "en"
        assert armed.first_response_due > received.occurred_at
        files = list(outbox.glob(f"{received.ticket_id}-*.eml"))
        assert len(files) == 1
        mail = message_from_bytes(files[0].read_bytes(), policy=policy.default)
        assert mail["To"].addresses[0].addr_spec == "bob@vector-logistics.com"
        assert f"[#{received.ticket_id}]" in mail["Subject"]
        assert mail["Message-ID"].strip() == sent.message_id  # long ids are folded
        await wait_for(lambda: last_event(js, TicketAssigned, "vector", received.ticket_id))
        types = [e.type for e in await ticket_events(js, received.ticket_id)]
        assert types[:2] == ["ticket.received", "ticket.classified"]  # then in either order:
        assert sorted(types[2:]) == ["notification.sent", "sla.armed", "ticket.assigned"]

    async def test_unknown_sender_is_acknowledged_without_a_deadline(self, services, js):
        apps, outbox = services
        received = make_ticket_received(tenant="unknown", requester={"email": "x@gmail.com"})
        await publish_event(apps[0].broker, received)
        await wait_for(
            lambda: last_event(js, NotificationSent, "unknown", received.ticket_id),
            timeout=10,
            message="acknowledgement",
        )
        assert await last_event(js, SlaArmed, "unknown", received.ticket_id) is None
        (path,) = outbox.glob(f"{received.ticket_id}-*.eml")
        assert (
            "подтвердим вашу организацию"
            in message_from_bytes(path.read_bytes(), policy=policy.default)
            .get_body(("plain",))
            .get_content()
        )

    async def test_a_rearmed_ticket_is_not_acknowledged_again(self, services, js):
        apps, outbox = services
        received = make_ticket_received(
            tenant="vector",
            subject="VPN drops",
            body="Every hour",
            requester={"email": "bob@vector-logistics.com"},
        )
        await publish_event(apps[0].broker, received)
        await wait_for(
            lambda: last_event(js, NotificationSent, "vector", received.ticket_id),
            timeout=10,
            message="acknowledgement",
        )
        await publish_event(
            apps[0].broker,
            TicketUpdated(
                event_id=uuid.uuid4(),
                occurred_at=datetime.now(UTC),
                tenant="vector",
                ticket_id=received.ticket_id,
                change=TicketChange.WAITING_ON_CLIENT,
                actor=Actor(kind="engineer", id="maria@opora.local"),
            ),
        )

        async def rearmed():
            armed = await last_event(js, SlaArmed, "vector", received.ticket_id)
            return armed.generation > 1

        await wait_for(rearmed, timeout=10, message="re-armed")

        async def notifier_idle():
            info = await js.consumer_info(subjects.EVENTS_STREAM, "notifier-ack")
            return info.num_pending == 0 and info.num_ack_pending == 0

        await wait_for(notifier_idle, timeout=10, message="the notifier caught up")
        sent = [
            e
            for e in await ticket_events(js, received.ticket_id)
            if isinstance(e, NotificationSent)
        ]
        assert len(sent) == 1
        assert len(list(outbox.glob(f"{received.ticket_id}-*.eml"))) == 1
