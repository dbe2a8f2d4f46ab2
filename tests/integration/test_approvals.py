"""Approval links over real HTTP into a real NATS: GET is safe, POST records one decision."""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from itsdangerous.timed import TimestampSigner
from prometheus_client import CollectorRegistry

from opora_intake.app import create_app
from opora_intake.settings import IntakeSettings
from opora_shared.approvals import ApprovalClaim, ApprovalSigner, signing_key
from opora_shared.events import TicketUpdated
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.nats.server import free_port
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
from opora_shared.vocabulary import Scope, TicketChange

JSON = {"Accept": "application/json"}
DIRECTOR = "director@romashka.ru"


@dataclass
class Intake:
    base: str
    app: object
    signer: ApprovalSigner

    def link(self, ticket_id: str, decision="approve", *, tenant="romashka", approver=DIRECTOR):
        token = self.signer.sign(ApprovalClaim(tenant, ticket_id, approver, decision))
        return f"/v1/approvals/{token}"

    async def ticket(self, **overrides) -> str:
        """A Romashka ticket, classified billable, as the notifier would ask approval for."""
        received = make_ticket_received(subject="Установить 1С на новый ноутбук", **overrides)
        broker = self.app.state.runtime.broker
        await publish_event(broker, received)
        classified = make_ticket_classified(
            tenant=received.tenant, ticket_id=received.ticket_id, scope=Scope.BILLABLE
        )
        await publish_event(broker, classified)
        return received.ticket_id


@pytest.fixture
async def intake(nats_url, tmp_path) -> AsyncIterator[Intake]:
    """The intake served over real HTTP on a free port, and a signer with its key."""
    settings = IntakeSettings(
        nats_url=nats_url, http_port=free_port(), smtp_port=0, var_dir=tmp_path
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
    signer = ApprovalSigner(signing_key(None, settings.signing_key_file))
    yield Intake(f"http://127.0.0.1:{settings.http_port}", app, signer)
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


async def decisions(js, ticket_id: str) -> list[TicketUpdated]:
    return [
        e
        for e in await ticket_events(js, ticket_id)
        if isinstance(e, TicketUpdated) and e.change in (TicketChange.APPROVED, "declined")
    ]


class TestGetIsSafe:
    async def test_the_page_shows_the_ticket_and_a_button_and_changes_nothing(self, intake, js):
        ticket_id = await intake.ticket()
        before = [e.type for e in await ticket_events(js, ticket_id)]
        async with httpx.AsyncClient(base_url=intake.base) as http:
            page = await http.get(intake.link(ticket_id))
            again = await http.get(intake.link(ticket_id), headers=JSON)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert '<html lang="ru">' in page.text
        assert f"#{ticket_id}" in page.text
        assert "Установить 1С на новый ноутбук" in page.text
        assert '<form method="post"' in page.text
        assert "Согласовать" in page.text
        assert "оплачивается отдельно" in page.text
        assert again.json()["state"] == "pending"
        assert again.json()["link_decision"] == "approve"
        assert [e.type for e in await ticket_events(js, ticket_id)] == before

    async def test_an_english_tenant_gets_an_english_page(self, intake):
        ticket_id = await intake.ticket(tenant="vector")
        link = intake.link(
            ticket_id, "decline", tenant="vector", approver="it-manager@vector-logistics.com"
        )
        async with httpx.AsyncClient(base_url=intake.base) as http:
            page = await http.get(link)
        assert page.status_code == 200
        assert '<html lang="en">' in page.text
        assert "Decline" in page.text


class TestPostRecordsOnce:
    async def test_approve_is_recorded_once_and_a_second_click_is_409(self, intake, js):
        ticket_id = await intake.ticket()
        async with httpx.AsyncClient(base_url=intake.base) as http:
            first = await http.post(intake.link(ticket_id))
            second = await http.post(intake.link(ticket_id), headers=JSON)
            other = await http.post(intake.link(ticket_id, "decline"), headers=JSON)
            page = await http.get(intake.link(ticket_id))
        assert first.status_code == 200
        assert "Спасибо" in first.text
        assert "согласовано" in first.text
        assert second.status_code == 409
        assert second.json()["state"] == "decided"
        assert second.json()["decision"] == "approved"
        assert other.status_code == 409
        assert other.json()["decision"] == "approved"
        assert page.status_code == 200
        assert "уже принято: согласовано" in page.text
        assert "<form" not in page.text
        (decision,) = await decisions(js, ticket_id)
        assert decision.change is TicketChange.APPROVED
        assert decision.actor.kind == "client"
        assert decision.actor.id == DIRECTOR
        assert decision.tenant == "romashka"

    async def test_a_double_click_racing_stores_one_event(self, intake, js):
        ticket_id = await intake.ticket()
        async with httpx.AsyncClient(base_url=intake.base) as http:
            answers = await asyncio.gather(
                http.post(intake.link(ticket_id, "decline"), headers=JSON),
                http.post(intake.link(ticket_id, "decline"), headers=JSON),
                http.post(intake.link(ticket_id, "approve"), headers=JSON),
            )
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409, 409]
        (decision,) = await decisions(js, ticket_id)
        winner = next(a for a in answers if a.status_code == 200).json()
        assert winner["state"] == "recorded"
        assert winner["decision"] == decision.change.value
        assert all(
            a.json()["decision"] == decision.change.value for a in answers if a.status_code == 409
        )


class TestBadLinks:
    async def test_a_tampered_token_is_400_naming_why(self, intake, js):
        ticket_id = await intake.ticket()
        link = intake.link(ticket_id)
        tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
        async with httpx.AsyncClient(base_url=intake.base) as http:
            as_json = await http.post(tampered, headers=JSON)
            as_page = await http.get(tampered)
        assert as_json.status_code == 400
        assert "not valid" in as_json.json()["detail"]
        assert as_page.status_code == 400
        assert "The link did not work" in as_page.text
        assert "not valid" in as_page.text
        assert await decisions(js, ticket_id) == []

    async def test_an_expired_token_is_400_naming_the_expiry(self, intake, js, monkeypatch):
        ticket_id = await intake.ticket()
        eight_days_ago = int(time.time()) - 8 * 24 * 3600
        # itsdangerous stamps tokens with get_timestamp(): sign as if eight days ago
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: eight_days_ago)
        link = intake.link(ticket_id)
        monkeypatch.undo()
        async with httpx.AsyncClient(base_url=intake.base) as http:
            response = await http.post(link, headers=JSON)
        assert response.status_code == 400
        assert "expired" in response.json()["detail"]
        assert await decisions(js, ticket_id) == []

    async def test_a_link_for_a_former_approver_is_403(self, intake, js):
        ticket_id = await intake.ticket()
        link = intake.link(ticket_id, approver="old-director@romashka.ru")
        async with httpx.AsyncClient(base_url=intake.base) as http:
            response = await http.post(link, headers=JSON)
        assert response.status_code == 403
        assert "approver" in response.json()["detail"]
        assert await decisions(js, ticket_id) == []

    async def test_a_ticket_of_another_tenant_is_404(self, intake, js):
        ticket_id = await intake.ticket()  # a Romashka ticket
        link = intake.link(ticket_id, tenant="vector", approver="it-manager@vector-logistics.com")
        async with httpx.AsyncClient(base_url=intake.base) as http:
            response = await http.post(link, headers=JSON)
        assert response.status_code == 404
        assert await decisions(js, ticket_id) == []

    async def test_a_link_signed_with_another_key_is_400(self, intake):
        ticket_id = await intake.ticket()
        stranger = ApprovalSigner(b"another deployment's key, 32 bytes")
        token = stranger.sign(ApprovalClaim("romashka", ticket_id, DIRECTOR, "approve"))
        async with httpx.AsyncClient(base_url=intake.base) as http:
            response = await http.post(f"/v1/approvals/{token}", headers=JSON)
        assert response.status_code == 400


async def test_the_routes_are_in_the_openapi_document(intake):
    async with httpx.AsyncClient(base_url=intake.base) as http:
        openapi = (await http.get("/openapi.json")).json()
    route = openapi["paths"]["/v1/approvals/{token}"]
    assert set(route) == {"get", "post"}
    assert "409" in route["post"]["responses"]
