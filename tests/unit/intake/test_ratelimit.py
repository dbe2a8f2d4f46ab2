"""Token buckets: a burst, then the refill rate; Retry-After in whole seconds."""

import asyncio

import pytest

from opora_intake.ratelimit import LimitsMiddleware, TokenBuckets, bearer_key, retry_after


class TestTokenBuckets:
    def test_allows_the_burst_then_refuses_with_the_wait(self):
        buckets = TokenBuckets(rate=2.0, burst=3)
        assert [buckets.take("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
        assert buckets.take("a", 100.0) == pytest.approx(0.5)

    def test_refills_at_the_rate_up_to_the_burst(self):
        buckets = TokenBuckets(rate=2.0, burst=3)
        for _ in range(3):
            buckets.take("a", 0.0)
        assert buckets.take("a", 0.5) == 0.0  # one request refilled in half a second
        assert buckets.take("a", 0.5) > 0
        assert all(buckets.take("a", 1000.0 + i * 1e-6) == 0.0 for i in range(3))
        assert buckets.take("a", 1000.0) > 0  # never more than the burst

    def test_keys_are_independent(self):
        buckets = TokenBuckets(rate=1.0, burst=1)
        assert buckets.take("a", 0.0) == 0.0
        assert buckets.take("b", 0.0) == 0.0
        assert buckets.take("a", 0.0) > 0

    def test_a_zero_rate_turns_the_limit_off(self):
        buckets = TokenBuckets(rate=0.0, burst=1)
        assert not buckets.enabled
        assert all(buckets.take("a", 0.0) == 0.0 for _ in range(100))

    def test_memory_is_bounded_by_forgetting_the_least_recent_keys(self):
        buckets = TokenBuckets(rate=1.0, burst=1, max_keys=3)
        for key in ("a", "b", "c", "d"):
            buckets.take(key, 0.0)
        assert len(buckets) == 3
        assert buckets.take("a", 0.0) == 0.0  # forgotten, so full again


class TestHeaders:
    def test_retry_after_is_whole_seconds_and_at_least_one(self):
        assert retry_after(0.01) == 1
        assert retry_after(1.2) == 2

    def test_the_token_key_is_a_hash_never_the_token(self):
        key = bearer_key([(b"authorization", b"Bearer secret-token")])
        assert key is not None
        assert "secret" not in key
        assert len(key) == 64
        assert bearer_key([(b"authorization", b"Basic abc")]) is None
        assert bearer_key([]) is None


async def _call(middleware, path="/v1/x", headers=(), body=b"", chunks=None):
    sent: list[dict] = []
    parts = chunks if chunks is not None else [body]

    async def receive():
        if parts:
            chunk = parts.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(parts)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "path": path,
        "method": "POST",
        "headers": list(headers),
        "client": ("10.0.0.1", 1234),
    }
    await middleware(scope, receive, send)
    return sent


class TestLimitsMiddleware:
    def make(self, **overrides):
        seen: list[bytes] = []

        async def app(scope, receive, send):
            message = await receive()
            seen.append(message.get("body", b""))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        options = {
            "per_ip": TokenBuckets(1.0, 2),
            "per_token": TokenBuckets(1.0, 1),
            "max_body_bytes": 10,
            "clock": lambda: 0.0,
        }
        options.update(overrides)
        return LimitsMiddleware(app, **options), seen

    def test_429_with_retry_after_past_the_ip_burst(self):
        middleware, _ = self.make()
        statuses = [asyncio.run(_call(middleware))[0]["status"] for _ in range(3)]
        assert statuses == [200, 200, 429]
        start = asyncio.run(_call(middleware))[0]
        assert dict(start["headers"])[b"retry-after"] == b"1"

    def test_a_token_is_limited_on_its_own(self):
        middleware, _ = self.make(per_ip=TokenBuckets(100.0, 100))
        auth = [(b"authorization", b"Bearer t1")]
        assert asyncio.run(_call(middleware, headers=auth))[0]["status"] == 200
        assert asyncio.run(_call(middleware, headers=auth))[0]["status"] == 429
        other = [(b"authorization", b"Bearer t2")]
        assert asyncio.run(_call(middleware, headers=other))[0]["status"] == 200

    def test_probes_are_never_limited(self):
        middleware, _ = self.make(per_ip=TokenBuckets(1.0, 1))
        assert all(
            asyncio.run(_call(middleware, path="/healthz"))[0]["status"] == 200 for _ in range(5)
        )

    def test_a_chunked_body_over_the_limit_is_413_and_under_it_is_replayed(self):
        middleware, seen = self.make(per_ip=TokenBuckets(100.0, 100))
        big = asyncio.run(_call(middleware, chunks=[b"123456", b"789012"]))
        assert big[0]["status"] == 413
        small = asyncio.run(_call(middleware, chunks=[b"1234", b"5678"]))
        assert small[0]["status"] == 200
        assert seen == [b"12345678"]
