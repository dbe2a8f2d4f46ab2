"""deploy/nats/nats-server.secure.conf: each service may do its work and nothing more.

A nats-server runs with the secure configuration. The classifier, sla-timer and notifier run
under their own users and carry a ticket from received to acknowledged. Then each user is
shown a subject it must not publish to, and the integrator is shown another tenant's events.
"""

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from opora_classifier.app import create_app as classifier_app
from opora_classifier.settings import ClassifierSettings
from opora_notifier.app import create_app as notifier_app
from opora_notifier.settings import NotifierSettings
from opora_shared import subjects
from opora_shared.contract_store import push
from opora_shared.events import NotificationSent, TicketClassified
from opora_shared.nats.history import last_event
from opora_shared.nats.server import NatsServer, free_port
from opora_shared.nats.streams import provision
from opora_shared.testing.factories import make_ticket_received
from opora_shared.testing.waiting import wait_for
from opora_sla_timer.app import create_app as sla_app
from opora_sla_timer.settings import SlaTimerSettings

ROOT = Path(__file__).resolve().parents[2]
SECURE = ROOT / "deploy" / "nats" / "nats-server.secure.conf"
USERS = ("admin", "intake", "classifier", "sla-timer", "notifier", "integrator-vector")


@dataclass
class Secured:
    server: NatsServer
    passwords: dict[str, str]

    def url(self, user: str) -> str:
        return f"nats://{user}:{self.passwords[user]}@127.0.0.1:{self.server.port}"


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[Secured]:
    passwords = {user: "pw" + secrets.token_hex(16) for user in USERS}
    env_names = {user: "OPORA_NATS_PASSWORD_" + user.upper().replace("-", "_") for user in USERS}
    mp = pytest.MonkeyPatch()
    for user, name in env_names.items():
        mp.setenv(name, passwords[user])  # nats-server reads them at start
    tmp = tmp_path_factory.mktemp("secure-nats")
    server = NatsServer(
        store_dir=tmp / "store",
        config=SECURE,
        port=free_port(),
        monitor_port=free_port(),
        log_file=tmp / "nats.log",
    )
    try:
        server.start()
        handle = Secured(server, passwords)

        async def prepare() -> None:
            nc = await nats.connect(handle.url("admin"))
            try:
                js = nc.jetstream()
                await provision(js)
                kv = await js.key_value(subjects.CONTRACTS_BUCKET)
                await push(kv, ROOT / "deploy" / "contracts", ROOT / "deploy" / "team.yml")
            finally:
                await nc.close()

        asyncio.run(prepare())
        yield handle
    finally:
        server.stop()
        mp.undo()


class Violations:
    """Collects the server's permission errors for one connection."""

    def __init__(self) -> None:
        self.errors: list[str] = []

        async def record(exc: Exception) -> None:  # nats-py wants a coroutine function
            self.errors.append(str(exc).lower())

        self.callback = record

    def about(self, subject: str) -> bool:
        """The server refused something on this subject (nats-py lower-cases the message)."""
        return any("permissions violation" in e and subject.lower() in e for e in self.errors)


@pytest.fixture
async def connect(secured) -> AsyncIterator:
    clients: list[Client] = []

    async def _connect(user: str) -> tuple[Client, Violations]:
        violations = Violations()
        client = await nats.connect(
            secured.url(user), error_cb=violations.callback, max_reconnect_attempts=0
        )
        clients.append(client)
        return client, violations

    yield _connect
    for client in clients:
        await client.close()


class TestServicesWorkUnderTheirOwnUsers:
    async def test_a_ticket_is_classified_armed_and_acknowledged(self, secured, connect, tmp_path):
        apps = [
            classifier_app(
                ClassifierSettings(nats_url=secured.url("classifier"), contracts_seed=False),
                registry=CollectorRegistry(),
            ),
            sla_app(
                SlaTimerSettings(nats_url=secured.url("sla-timer"), contracts_seed=False),
                registry=CollectorRegistry(),
            ),
            notifier_app(
                NotifierSettings(
                    nats_url=secured.url("notifier"), var_dir=tmp_path, contracts_seed=False
                ),
                registry=CollectorRegistry(),
            ),
        ]
        for app in apps:
            await app.start()
        try:
            intake, violations = await connect("intake")
            js = intake.jetstream()
            received = make_ticket_received(
                tenant="vector", requester={"email": "bob@vector-logistics.com"}
            )
            await js.publish(
                subjects.event_subject(received),
                received.model_dump_json().encode(),
                headers={"Nats-Msg-Id": str(received.event_id)},
            )
            admin, _ = await connect("admin")
            admin_js = admin.jetstream()
            await wait_for(
                lambda: last_event(admin_js, NotificationSent, "vector", received.ticket_id),
                timeout=15,
                message="acknowledgement under per-service users",
            )
            assert await last_event(admin_js, TicketClassified, "vector", received.ticket_id)
            assert violations.errors == []
        finally:
            for app in apps:
                await app.stop()


class TestDenied:
    @pytest.mark.parametrize(
        ("user", "subject"),
        [
            ("classifier", "opora.ev.romashka.sla.1.breached"),
            ("sla-timer", "opora.ev.romashka.ticket.1.classified"),
            ("notifier", "opora.ev.romashka.ticket.1.updated"),
            ("intake", "$KV.opora_sla.1"),
            ("classifier", "$KV.opora_contracts.romashka"),
            ("notifier", "$JS.API.STREAM.DELETE.OPORA_EVENTS"),
            ("integrator-vector", "opora.ev.vector.ticket.1.received"),
        ],
    )
    async def test_a_user_may_not_publish_outside_its_subjects(self, connect, user, subject):
        client, violations = await connect(user)
        await client.publish(subject, b"{}")
        await client.flush()
        await wait_for(lambda: violations.about(subject), timeout=5, message="violation")

    async def test_a_service_cannot_delete_the_audit_trail(self, connect):
        client, violations = await connect("notifier")
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await client.jetstream(timeout=1).delete_stream(subjects.EVENTS_STREAM)
        deleting = f"$JS.API.STREAM.DELETE.{subjects.EVENTS_STREAM}"
        await wait_for(lambda: violations.about(deleting), timeout=5, message="violation")
        admin, _ = await connect("admin")
        assert (await admin.jetstream().stream_info(subjects.EVENTS_STREAM)).config.name

    async def test_an_integrator_reads_its_tenant_and_never_another(self, connect):
        integrator, violations = await connect("integrator-vector")
        seen: list[str] = []

        async def on_message(msg) -> None:
            seen.append(msg.subject)

        await integrator.subscribe("opora.ev.vector.>", cb=on_message)
        await integrator.subscribe("opora.ev.romashka.>", cb=on_message)
        await integrator.flush()
        await wait_for(
            lambda: violations.about("opora.ev.romashka.>"), timeout=5, message="violation"
        )
        intake, _ = await connect("intake")
        for tenant in ("romashka", "vector"):
            event = make_ticket_received(tenant=tenant)
            await intake.jetstream().publish(
                subjects.event_subject(event), event.model_dump_json().encode()
            )
        await wait_for(lambda: seen, timeout=5, message="vector's event")
        await intake.flush()
        assert all(subject.startswith("opora.ev.vector.") for subject in seen)
