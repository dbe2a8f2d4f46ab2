"""Request limits of the HTTP API: rate limits per client IP and per token, streamed bodies.

Rate limits are token buckets (``TokenBuckets``, pure: the caller passes ``now``): each key
holds up to ``burst`` requests and refills at ``rate`` a second; an empty bucket answers 429
with ``Retry-After`` (whole seconds until one request is allowed again). Buckets live in this
process's memory, so each replica counts on its own: behind N replicas a client gets up to N
times the rate. That is the price of keeping no shared state on the hot path; the limits guard
the service from floods, not billing. The per-token key is the SHA-256 of the presented bearer
token (known or not), never the token itself.

``LimitsMiddleware`` (pure ASGI) also enforces the JSON body limit on ``/v1/`` requests sent
without ``Content-Length`` (chunked), which a header check alone would let through.
``install_limits`` puts it on the app, with a last-resort handler that turns a bug into a bare
500 (logged with the route's template, never the path: paths carry link tokens).
"""

import hashlib
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opora_intake.metrics import IntakeMetrics
from opora_intake.settings import IntakeSettings

log = logging.getLogger(__name__)

MAX_KEYS = 10_000
"""Buckets kept per limiter; the least recently used go first (a full bucket is the default)."""

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
"""Probes are never limited: an orchestrator must always see the truth."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """Token buckets by key: ``take(key, now)`` is 0 when allowed, else seconds to wait."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = MAX_KEYS) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """False when the rate is 0 (limit off)."""
        return self.rate > 0

    def take(self, key: str, now: float) -> float:
        """Take one request from the key's bucket: 0.0 if allowed, else seconds until allowed."""
        if not self.enabled:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait_s: float) -> int:
    """The Retry-After header value: whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))


def bearer_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The rate-limit key of the request's bearer token (its SHA-256), or None."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                return hashlib.sha256(credential.strip().encode()).hexdigest()
    return None


class LimitsMiddleware:
    """429 over the per-IP or per-token rate; 413 for a body declared or streamed too long.

    A pure ASGI middleware: Starlette's ``@app.middleware("http")`` wraps every request in
    extra tasks and streams, which cost about a millisecond of CPU per request.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_ip: TokenBuckets,
        per_token: TokenBuckets,
        max_body_bytes: int,
        on_reject: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        own_limit_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.own_limit_paths = own_limit_paths
        """Paths that enforce their own body limit (the web form with attachments)."""
        self.per_ip = per_ip
        self.per_token = per_token
        self.max_body_bytes = max_body_bytes
        self.on_reject = on_reject or (lambda _reason: None)
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        now = self.clock()
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        wait = self.per_ip.take(ip, now)
        who = "client address"
        if not wait:
            token = bearer_key(scope.get("headers", []))
            if token is not None:
                wait, who = self.per_token.take(token, now), "token"
        if wait:
            self.on_reject("rate_limited")
            seconds = retry_after(wait)
            detail = f"too many requests from this {who}; retry in {seconds} s"
            await _answer(send, 429, detail, {"retry-after": str(seconds)})
            return
        length = _declared_length(scope)
        if length is not None:
            if length > self.max_body_bytes and scope["path"] not in self.own_limit_paths:
                self.on_reject("too_large")
                await _answer(send, 413, f"body over {self.max_body_bytes} bytes", {})
                return
        elif scope["path"].startswith("/v1/"):
            body = await _read_capped(receive, self.max_body_bytes)
            if body is None:
                self.on_reject("too_large")
                await _answer(send, 413, f"body over {self.max_body_bytes} bytes", {})
                return
            receive = _replay(body)
        await self.app(scope, receive, send)


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header's value (an unreadable one counts as none)."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _read_capped(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it grows over ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: let the app see an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _answer(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw_headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers.items()),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": status}
    start["headers"] = raw_headers
    await send(start)
    await send({"type": "http.response.body", "body": body})


def install_limits(
    app: FastAPI,
    settings: IntakeSettings,
    metrics: IntakeMetrics,
    *,
    own_limit_paths: frozenset[str] = frozenset(),
) -> None:
    """Rate limits and the body limits on the app, and a last-resort 500 handler."""
    app.add_middleware(
        LimitsMiddleware,
        own_limit_paths=own_limit_paths,
        per_ip=TokenBuckets(settings.rate_limit_ip_per_s, settings.rate_limit_ip_burst),
        per_token=TokenBuckets(settings.rate_limit_token_per_s, settings.rate_limit_token_burst),
        max_body_bytes=settings.max_json_bytes,
        on_reject=lambda reason: metrics.rejected.labels(reason).inc(),
    )

    async def internal_error(request: Request, exc: Exception) -> Response:
        # A bug, not an input problem: say so without details and log the traceback. The
        # route's template, not the path: paths carry approval and status-link tokens.
        route = getattr(request.scope.get("route"), "path", "?")
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, route, exc_info=exc)
        return JSONResponse({"detail": "internal error; it is logged"}, status_code=500)

    app.add_exception_handler(Exception, internal_error)
