"""Token management over real HTTP into a real NATS: made once, listed without the secret,
revoked at once; only admin tokens of every tenant manage tokens.

Also home of ``serve_intake``, the intake on a free port that the other ``test_api_*`` and
``test_integrations*`` modules start.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from opora_intake.app import create_app
from opora_intake.settings import IntakeSettings
from opora_shared import subjects
from opora_shared.nats.server import free_port
from opora_shared.testing.waiting import wait_for
from opora_shared.tokens import ALL_TENANTS, TokenRecord, new_token, store_token


@dataclass
class Intake:
    """A running intake: its address, app, and an admin token."""

    base: str
    app: FastAPI
    js: JetStreamContext
    admin: str

    def http(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=30, **kwargs)

    async def token(
        self, tenant: str | None = "romashka", scopes=("tickets:read",), tenants=()
    ) -> str:
        """A token stored straight in KV (the API's own tests make them over HTTP)."""
        token = new_token()
        record = TokenRecord(name="test", tenant=tenant, tenants=tuple(tenants), scopes=scopes)
        await store_token(self.js, token, record)
        return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def serve_intake(
    nats_url: str, var_dir, js: JetStreamContext, **overrides: Any
) -> AsyncIterator[Intake]:
    """The intake app served over real HTTP on a free port, in this test's event loop."""
    settings = IntakeSettings(
        nats_url=nats_url, http_port=free_port(), smtp_port=0, var_dir=var_dir, **overrides
    )
    app = create_app(settings, registry=CollectorRegistry())
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=settings.http_port, log_config=None, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started or task.done(), timeout=30, message="intake started")
    assert server.started, "intake did not start"
    admin = new_token()
    await store_token(js, admin, TokenRecord(name="admin", tenant=ALL_TENANTS, scopes=("admin",)))
    try:
        yield Intake(f"http://127.0.0.1:{settings.http_port}", app, js, admin)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


@pytest.fixture
async def intake(nats_url, tmp_path, js) -> AsyncIterator[Intake]:
    async with serve_intake(nats_url, tmp_path, js) as running:
        yield running


async def make(intake: Intake, **body: Any) -> httpx.Response:
    async with intake.http() as http:
        return await http.post("/v1/tokens", json=body, headers=bearer(intake.admin))


def fields(response: httpx.Response) -> set[str]:
    return {str(part) for err in response.json()["detail"] for part in err["loc"]}


class TestMakeToken:
    async def test_the_token_is_shown_once_and_only_its_hash_is_stored(self, intake, js):
        made = await make(intake, name="zabbix", tenant="romashka", scopes=["events:write"])
        assert made.status_code == 201
        body = made.json()
        assert body["id"].startswith("tok_")
        assert body["token"].startswith("opora_")
        assert (body["tenant"], body["scopes"], body["revoked"]) == (
            "romashka",
            ["events:write"],
            False,
        )
        kv = await js.key_value(subjects.TOKENS_BUCKET)
        for key in await kv.keys():
            value = (await kv.get(key)).value or b""
            assert body["token"].encode() not in value
            assert body["token"] not in key

    async def test_listing_shows_every_token_but_never_the_secret(self, intake):
        made = (await make(intake, name="lister", tenant="*", scopes=["tickets:read"])).json()
        async with intake.http() as http:
            listed = await http.get("/v1/tokens", headers=bearer(intake.admin))
        assert listed.status_code == 200
        mine = next(t for t in listed.json() if t["id"] == made["id"])
        assert mine["name"] == "lister"
        assert mine["tenant"] == "*"
        assert "token" not in mine
        assert made["token"] not in listed.text

    async def test_an_engineer_token_spans_the_tenants_it_names(self, intake):
        made = await make(
            intake, name="maria", tenants=["vector", "romashka"], scopes=["tickets:read"]
        )
        assert made.status_code == 201
        assert made.json()["tenants"] == ["romashka", "vector"]
        async with intake.http() as http:
            for tenant in ("romashka", "vector"):
                page = await http.get(
                    "/v1/tickets", params={"tenant": tenant}, headers=bearer(made.json()["token"])
                )
                assert page.status_code == 200

    async def test_creation_is_logged_by_id_never_by_token(self, intake, caplog):
        caplog.set_level(logging.INFO, logger="opora_intake")
        made = (await make(intake, name="audit", tenant="vector", scopes=["tickets:read"])).json()
        lines = [r.getMessage() for r in caplog.records if r.name == "opora_intake.tokens_api"]
        assert any(made["id"] in line and "made by tok_" in line for line in lines)
        assert all(made["token"] not in r.getMessage() for r in caplog.records)

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "x", "scopes": ["tickets:read"]}, "tenant"),
            ({"name": "x", "tenant": "romashka", "tenants": ["vector"], "scopes": []}, "scopes"),
            ({"name": "x", "tenant": "romashka", "scopes": ["ad"]}, "scopes"),
            ({"name": "x", "tenant": "romashka", "tenants": ["vector"], "scopes": ["tickets:read"]},
             "tenant"),
            ({"name": "x", "tenant": "romashka", "scopes": ["admin"]}, "scopes"),
            ({"name": "x", "tenant": "romashka", "scopes": ["root"]}, "scopes"),
            ({"name": "x", "tenant": "nosuchtenant", "scopes": ["tickets:read"]}, "tenant"),
            ({"name": "x", "tenants": ["romashka", "nosuch"], "scopes": ["tickets:read"]},
             "tenants"),
            ({"name": "", "tenant": "romashka", "scopes": ["tickets:read"]}, "name"),
            ({"name": "x", "tenant": "Romashka!", "scopes": ["tickets:read"]}, "tenant"),
        ],
    )  # fmt: skip
    async def test_invalid_input_is_422_naming_the_field(self, intake, body, field):
        response = await make(intake, **body)
        assert response.status_code == 422
        assert field in fields(response)


class TestRevoke:
    async def test_a_revoked_token_answers_401_at_once(self, intake):
        made = (await make(intake, name="gone", tenant="romashka", scopes=["tickets:read"])).json()
        async with intake.http() as http:
            before = await http.get("/v1/tickets", headers=bearer(made["token"]))
            revoked = await http.delete(f"/v1/tokens/{made['id']}", headers=bearer(intake.admin))
            after = await http.get("/v1/tickets", headers=bearer(made["token"]))
            again = await http.delete(f"/v1/tokens/{made['id']}", headers=bearer(intake.admin))
            listed = await http.get("/v1/tokens", headers=bearer(intake.admin))
        assert before.status_code == 200
        assert revoked.status_code == 204
        assert after.status_code == 401
        assert again.status_code == 204
        mine = next(t for t in listed.json() if t["id"] == made["id"])
        assert mine["revoked"] is True
        assert mine["revoked_at"] is not None

    async def test_unknown_ids_are_404(self, intake):
        async with intake.http() as http:
            unknown = await http.delete(
                "/v1/tokens/tok_0000000000000000", headers=bearer(intake.admin)
            )
            junk = await http.delete("/v1/tokens/nonsense", headers=bearer(intake.admin))
        assert unknown.status_code == junk.status_code == 404

    async def test_self_revocation_is_409(self, intake):
        made = (await make(intake, name="admin2", tenant="*", scopes=["admin"])).json()
        async with intake.http() as http:
            response = await http.delete(f"/v1/tokens/{made['id']}", headers=bearer(made["token"]))
        assert response.status_code == 409


class TestOnlyAdmins:
    @pytest.mark.parametrize(
        "scopes", [("tickets:read", "tickets:write", "events:write"), ("admin",)]
    )
    async def test_others_get_403(self, intake, scopes):
        # a tenant-bound admin record (never made by the API) is refused too
        token = await intake.token("romashka", scopes=scopes)
        async with intake.http() as http:
            made = await http.post(
                "/v1/tokens",
                json={"name": "x", "tenant": "romashka", "scopes": ["tickets:read"]},
                headers=bearer(token),
            )
            listed = await http.get("/v1/tokens", headers=bearer(token))
            deleted = await http.delete("/v1/tokens/tok_0000000000000000", headers=bearer(token))
        assert (made.status_code, listed.status_code, deleted.status_code) == (403, 403, 403)

    async def test_no_token_is_401(self, intake):
        async with intake.http() as http:
            response = await http.get("/v1/tokens")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
