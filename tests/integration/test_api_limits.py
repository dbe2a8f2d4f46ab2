"""Limits and errors of the HTTP API over real HTTP: 429 with Retry-After per client IP and per
token, 413 over the body limit (also chunked), 404 unknown routes, 405 wrong methods."""

from collections.abc import AsyncIterator

import pytest

from .test_api_tokens import Intake, bearer, serve_intake


@pytest.fixture
async def strict(nats_url, tmp_path, js) -> AsyncIterator[Intake]:
    """An intake with small limits: 3 requests per IP at once, 2 per token, 64 KiB bodies."""
    async with serve_intake(
        nats_url,
        tmp_path,
        js,
        rate_limit_ip_per_s=0.01,
        rate_limit_ip_burst=3,
        rate_limit_token_per_s=0.01,
        rate_limit_token_burst=2,
        max_json_bytes=64 * 1024,
    ) as running:
        yield running


@pytest.fixture
async def loose(nats_url, tmp_path, js) -> AsyncIterator[Intake]:
    async with serve_intake(nats_url, tmp_path, js, max_json_bytes=64 * 1024) as running:
        yield running


class TestRateLimits:
    async def test_a_client_ip_over_its_burst_gets_429_with_retry_after(self, strict):
        async with strict.http() as http:
            statuses = [(await http.get("/v1/tokens")).status_code for _ in range(3)]
            limited = await http.get("/v1/tokens")
            probe = await http.get("/healthz")
        assert statuses == [401, 401, 401]
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "client address" in limited.json()["detail"]
        assert probe.status_code == 200  # probes are never limited

    async def test_a_token_over_its_burst_gets_429(self, nats_url, tmp_path, js):
        async with serve_intake(
            nats_url, tmp_path, js, rate_limit_token_per_s=0.01, rate_limit_token_burst=2
        ) as intake:
            token = await intake.token("romashka")
            async with intake.http() as http:
                first = [
                    (await http.get("/v1/tickets", headers=bearer(token))).status_code
                    for _ in range(2)
                ]
                limited = await http.get("/v1/tickets", headers=bearer(token))
                other = await http.get("/v1/tickets", headers=bearer(await intake.token("vector")))
        assert first == [200, 200]
        assert limited.status_code == 429
        assert "token" in limited.json()["detail"]
        assert int(limited.headers["retry-after"]) >= 1
        assert other.status_code == 200


class TestBodies:
    async def test_over_the_limit_is_413(self, loose):
        sender = await loose.token("vector", scopes=("events:write",))
        big = {"source": "x", "dedup_key": "k", "summary": "s", "details": {"a": "x" * 70_000}}
        async with loose.http() as http:
            response = await http.post("/v1/events", json=big, headers=bearer(sender))
        assert response.status_code == 413

    async def test_a_chunked_body_over_the_limit_is_413_too(self, loose):
        sender = await loose.token("vector", scopes=("events:write",))

        async def chunks():
            for _ in range(20):
                yield b"x" * 8192

        async with loose.http() as http:
            response = await http.post(
                "/v1/integrations/alertmanager",
                content=chunks(),
                headers={**bearer(sender), "content-type": "application/json"},
            )
        assert response.status_code == 413


class TestRoutes:
    async def test_unknown_routes_are_404_and_wrong_methods_405(self, loose):
        async with loose.http() as http:
            unknown = await http.get("/v1/nothing-here")
            methods = [
                (await http.request(method, path)).status_code
                for method, path in (
                    ("GET", "/v1/events"),
                    ("DELETE", "/v1/integrations/alertmanager"),
                    ("PUT", "/v1/tokens"),
                    ("GET", "/v1/tickets/1/events"),
                )
            ]
        assert unknown.status_code == 404
        assert methods == [405, 405, 405, 405]
