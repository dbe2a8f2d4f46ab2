import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from opora_intake.app import create_app
from opora_intake.settings import IntakeSettings
from opora_shared.events import TicketReceived
from opora_shared.nats.history import last_event
from opora_shared.nats.publish import publish_event
from opora_shared.nats.server import free_port
from opora_shared.testing.factories import make_ticket_received
from opora_shared.tokens import TokenRecord, new_token, store_token

REPO_CONTRACTS = "deploy/contracts"


@pytest.fixture
async def intake(nats_url, tmp_path) -> AsyncIterator[tuple[str, object]]:
    """The intake app served over real HTTP on a free port, in this test's event loop."""
    settings = IntakeSettings(
        nats_url=nats_url,
        http_port=free_port(),
        smtp_port=0,
        var_dir=tmp_path,
        max_json_bytes=64 * 1024,
    )
    app = create_app(settings, registry=CollectorRegistry())
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=settings.http_port, log_config=None, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.025)
    assert server.started, "intake did not start"
    yield f"http://127.0.0.1:{settings.http_port}", app
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


@pytest.fixture
async def token_for(js):
    async def make(tenant: str, scopes=("tickets:read",)) -> str:
        token = new_token()
        await store_token(js, token, TokenRecord(name="test", tenant=tenant, scopes=scopes))
        return token

    return make


def ticket(**overrides):
    body = {
        "from": "anna@romashka.ru",
        "name": "Анна",
        "subject": "Принтер не печатает",
        "body": "Замяло бумагу",
    }
    body.update(overrides)
    return body


class TestSubmitTicket:
    async def test_accepted_ticket_is_stored_with_tenant_from_sender(self, intake, js):
        base, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.post("/v1/tickets", json=ticket())
        assert response.status_code == 202
        ticket_id = response.json()["id"]
        stored = await last_event(js, TicketReceived, "romashka", ticket_id)
        assert stored is not None
        assert stored.requester.email == "anna@romashka.ru"
        assert stored.channel == "web"

    async def test_unknown_sender_still_gets_a_ticket(self, intake, js):
        base, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.post("/v1/tickets", json=ticket(**{"from": "x@gmail.com"}))
        assert response.status_code == 202
        assert await last_event(js, TicketReceived, "unknown", response.json()["id"])

    async def test_idempotency_key_returns_the_first_ticket(self, intake):
        base, _ = intake
        key = str(uuid.uuid4())
        async with httpx.AsyncClient(base_url=base) as http:
            first = await http.post("/v1/tickets", json=ticket(), headers={"Idempotency-Key": key})
            again = await http.post("/v1/tickets", json=ticket(), headers={"Idempotency-Key": key})
        assert first.json() == {"id": first.json()["id"], "duplicate": False}
        assert again.json() == {"id": first.json()["id"], "duplicate": True}

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (ticket(**{"from": "not-an-address"}), "from"),
            (ticket(subject=""), "subject"),
            ({k: v for k, v in ticket().items() if k != "body"}, "body"),
            (ticket(priority="P1"), "priority"),
        ],
    )
    async def test_invalid_input_is_422_naming_the_field(self, intake, body, field):
        base, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.post("/v1/tickets", json=body)
        assert response.status_code == 422
        assert field in {str(part) for err in response.json()["detail"] for part in err["loc"]}

    async def test_oversized_body_is_413(self, intake):
        base, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            response = await http.post("/v1/tickets", json=ticket(body="x" * 70_000))
        assert response.status_code == 413


class TestReadTicket:
    async def test_needs_a_token(self, intake):
        base, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/v1/tickets/1")).status_code == 401
            bad = await http.get("/v1/tickets/1", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert bad.headers["www-authenticate"] == "Bearer"

    async def test_other_tenants_ticket_is_404_like_a_missing_one(
        self, intake, nats_url, token_for
    ):
        base, app = intake
        event = make_ticket_received(tenant="vector")
        await publish_event(app.state.runtime.broker, event)
        romashka, vector = await token_for("romashka"), await token_for("vector")
        async with httpx.AsyncClient(base_url=base) as http:
            hidden = await http.get(
                f"/v1/tickets/{event.ticket_id}", headers={"Authorization": f"Bearer {romashka}"}
            )
            missing = await http.get(
                "/v1/tickets/999999999998", headers={"Authorization": f"Bearer {romashka}"}
            )
            seen = await http.get(
                f"/v1/tickets/{event.ticket_id}", headers={"Authorization": f"Bearer {vector}"}
            )
            junk = await http.get(
                "/v1/tickets/..%2F1", headers={"Authorization": f"Bearer {vector}"}
            )
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["detail"].startswith("no ticket")
        assert seen.status_code == 200
        assert seen.json()["tenant"] == "vector"
        assert seen.json()["status"] == "new"
        assert junk.status_code == 404


class TestHealth:
    async def test_health_and_readiness(self, intake):
        base, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready"}

    async def test_openapi_and_asyncapi_are_served(self, intake):
        base, _ = intake
        async with httpx.AsyncClient(base_url=base) as http:
            openapi = (await http.get("/openapi.json")).json()
            asyncapi = (await http.get("/asyncapi.json")).json()
        assert "/v1/tickets" in openapi["paths"]
        assert any("ticket" in name for name in asyncapi["channels"])
