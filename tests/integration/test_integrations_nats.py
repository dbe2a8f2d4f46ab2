"""Integrators on NATS: the generic event on ``opora.in.<tenant>.events`` makes and resolves
tickets like ``POST /v1/events``; an invalid message is dead-lettered with the reason.

The last class runs nats-server with ``deploy/nats/nats-server.secure.conf``: Vector's
integrator may publish on its own subject and on no other tenant's.
"""

import base64
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from opora_intake.integrations.ingest import AlertKeys
from opora_shared import subjects
from opora_shared.events import DeadLetter, TicketReceived, TicketUpdated
from opora_shared.nats.history import ticket_events
from opora_shared.nats.server import NatsServer, free_port
from opora_shared.nats.streams import provision
from opora_shared.testing.waiting import wait_for
from opora_shared.vocabulary import Channel, TicketChange

from .test_api_tokens import Intake, serve_intake

ROOT = Path(__file__).resolve().parents[2]
SECURE = ROOT / "deploy" / "nats" / "nats-server.secure.conf"


@pytest.fixture
async def intake(nats_url, tmp_path, js) -> AsyncIterator[Intake]:
    async with serve_intake(nats_url, tmp_path, js) as running:
        yield running


def event(key: str, **overrides) -> dict:
    body = {
        "source": "veeam",
        "dedup_key": key,
        "summary": "Backup job 1C-nightly failed",
        "severity": "error",
        "resource": "srv-backup",
        "details": {"job": "1C-nightly", "result": "Failed"},
    }
    body.update(overrides)
    return body


async def publish(js, tenant: str, body: dict | bytes) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    ack = await js.publish(
        subjects.integrator_events(tenant), data, headers={"Nats-Msg-Id": uuid.uuid4().hex}
    )
    assert ack.stream == subjects.INBOUND_STREAM


async def ticket_of(js, tenant: str, source: str, key: str) -> str | None:
    keys = AlertKeys(js, ids=None)  # reading only: no numbers are taken
    return await keys.current("\x1f".join((tenant, source, key)))


async def dead_letters(js) -> list[DeadLetter]:
    letters, seq = [], 1
    while True:
        try:
            raw = await js.get_msg(
                subjects.DLQ_STREAM, seq=seq, subject=subjects.dead_letter("intake"), next=True
            )
        except NotFoundError:
            return letters
        letters.append(DeadLetter.model_validate_json(raw.data))
        seq = (raw.seq or seq) + 1


async def letter_about(js, marker: str) -> DeadLetter | None:
    return next(
        (d for d in await dead_letters(js) if marker in base64.b64decode(d.payload_b64).decode()),
        None,
    )


class TestIntegratorSubject:
    async def test_a_valid_event_opens_the_ticket_and_a_resolve_closes_it(self, intake, js):
        key = f"job-{uuid.uuid4().hex}"
        await publish(js, "romashka", event(key))
        ticket_id = await wait_for(
            lambda: ticket_of(js, "romashka", "veeam", key), timeout=20, message="ticket made"
        )

        async def received() -> TicketReceived | None:
            events = await ticket_events(js, ticket_id)
            return next((e for e in events if isinstance(e, TicketReceived)), None)

        ticket = await wait_for(received, timeout=20, message="ticket stored")
        assert ticket.channel is Channel.INTEGRATION
        assert ticket.requester.email == "veeam@romashka"
        assert ticket.subject == "Backup job 1C-nightly failed"
        assert "Severity: error" in ticket.body

        await publish(js, "romashka", event(key, action="resolve"))

        async def resolved() -> TicketUpdated | None:
            events = await ticket_events(js, ticket_id)
            return next(
                (
                    e
                    for e in events
                    if isinstance(e, TicketUpdated) and e.change is TicketChange.RESOLVED
                ),
                None,
            )

        update = await wait_for(resolved, timeout=20, message="ticket resolved")
        assert (update.actor.kind, update.actor.id) == ("integration", "nats:veeam")

    async def test_the_same_key_over_http_finds_the_same_ticket(self, intake, js):
        key = f"job-{uuid.uuid4().hex}"
        await publish(js, "vector", event(key))
        ticket_id = await wait_for(
            lambda: ticket_of(js, "vector", "veeam", key), timeout=20, message="ticket made"
        )
        token = await intake.token("vector", scopes=("events:write",))
        async with intake.http() as http:
            response = await http.post(
                "/v1/events", json=event(key), headers={"Authorization": f"Bearer {token}"}
            )
        assert response.json()["ticket_id"] == ticket_id
        assert response.json()["outcome"] in ("unchanged", "created")  # created: a race lost

    @pytest.mark.parametrize(
        ("tenant", "body", "reason"),
        [
            ("romashka", {"source": "veeam", "dedup_key": "k"}, "summary"),
            ("romashka", {"source": "veeam", "dedup_key": "k", "summary": "x", "x": 1}, "x"),
            ("romashka", b"not json at all", "Invalid JSON"),
            ("nosuchtenant", None, "has no contract"),
        ],
    )
    async def test_an_invalid_message_is_dead_lettered_with_the_reason(
        self, intake, js, tenant, body, reason
    ):
        marker = uuid.uuid4().hex
        if body is None:
            payload = json.dumps(event(marker)).encode()
        elif isinstance(body, bytes):
            payload = body + marker.encode()
        else:
            payload = json.dumps({**body, "dedup_key": marker}).encode()
        await publish(js, tenant, payload)
        letter = await wait_for(
            lambda: letter_about(js, marker), timeout=30, message="dead letter stored"
        )
        assert letter.subject == subjects.integrator_events(tenant)
        assert letter.stream == subjects.INBOUND_STREAM
        assert reason in letter.reason
        assert letter.num_delivered == 1


class TestIntegratorPermissions:
    @pytest.fixture
    async def secured(self, tmp_path) -> AsyncIterator[dict[str, str]]:
        users = ("admin", "integrator-vector")
        # hex after a letter: nats-server reads a variable starting with "-" or a digit as a
        # number, and refuses to start
        passwords = {user: "pw" + secrets.token_hex(16) for user in users}
        mp = pytest.MonkeyPatch()
        for user in users:
            mp.setenv("OPORA_NATS_PASSWORD_" + user.upper().replace("-", "_"), passwords[user])
        for user in ("intake", "classifier", "sla-timer", "notifier"):
            mp.setenv("OPORA_NATS_PASSWORD_" + user.upper().replace("-", "_"), "unused")
        server = NatsServer(
            store_dir=tmp_path / "store",
            config=SECURE,
            port=free_port(),
            monitor_port=free_port(),
            log_file=tmp_path / "nats.log",
        )
        try:
            server.start()
            urls = {u: f"nats://{u}:{passwords[u]}@127.0.0.1:{server.port}" for u in users}
            admin = await nats.connect(urls["admin"])
            try:
                await provision(admin.jetstream())
            finally:
                await admin.close()
            yield urls
        finally:
            server.stop()
            mp.undo()

    async def test_vector_publishes_for_vector_only(self, secured):
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        client = await nats.connect(
            secured["integrator-vector"],
            inbox_prefix="_INBOX.integrator-vector",
            error_cb=on_error,
            max_reconnect_attempts=0,
        )
        try:
            js = client.jetstream(timeout=5)
            ack = await js.publish(subjects.integrator_events("vector"), b"{}")
            assert ack.stream == subjects.INBOUND_STREAM
            await client.publish(subjects.integrator_events("romashka"), b"{}")
            await client.flush()
            denied = subjects.integrator_events("romashka")
            await wait_for(
                lambda: any("permissions violation" in e and denied in e for e in errors),
                timeout=5,
                message="permission violation",
            )
        finally:
            await client.close()
