"""Schemathesis against the intake's OpenAPI document: no input makes a 5xx, every answer
matches its documented schema.

The intake runs on a free port in a thread of its own (Schemathesis calls it synchronously),
on a nats-server of its own (fuzzed requests make tickets and tokens no other test should see).
Rate limits are off here; ``test_api_limits`` covers them. Examples are bounded and
derandomized, so a run is repeatable and takes well under a minute.
"""

import asyncio
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from opora_intake.app import create_app
from opora_intake.settings import IntakeSettings
from opora_shared.nats.server import free_port
from opora_shared.nats.streams import provision
from opora_shared.testing.plugin import start_nats
from opora_shared.testing.waiting import poll_until
from opora_shared.tokens import ALL_TENANTS, TokenRecord, new_token, store_token

MAX_EXAMPLES = 25
EXAMPLES: Counter[str] = Counter()
"""Examples run per operation (``METHOD /path``), checked by the last test."""


@dataclass
class Fuzzed:
    base: str
    admin: str
    member: str
    """A Romashka token with every scope but admin: fuzzed events reach the ticket code."""


async def _prepare(url: str) -> tuple[str, str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await provision(js)
        admin, member = new_token(), new_token()
        await store_token(
            js, admin, TokenRecord(name="fuzz-admin", tenant=ALL_TENANTS, scopes=("admin",))
        )
        scopes = ("tickets:read", "tickets:write", "events:write")
        await store_token(js, member, TokenRecord(name="fuzz", tenant="romashka", scopes=scopes))
    finally:
        await nc.close()
    return admin, member


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    tmp = Path(tempfile.mkdtemp(prefix="opora-fuzz-"))
    server = start_nats(tmp / "store")
    http = None
    thread = None
    try:
        admin, member = asyncio.run(_prepare(server.url))
        intake_settings = IntakeSettings(
            nats_url=server.url,
            http_port=free_port(),
            smtp_port=0,
            var_dir=tmp,
            rate_limit_ip_per_s=0,
            rate_limit_token_per_s=0,
        )
        app = create_app(intake_settings, registry=CollectorRegistry())
        http = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=intake_settings.http_port,
                log_config=None,
                lifespan="on",
            )
        )
        thread = threading.Thread(target=http.run, name="fuzzed-intake", daemon=True)
        thread.start()
        poll_until(lambda: http.started or not thread.is_alive(), timeout=60, message="intake")
        assert http.started, "intake did not start"
        yield Fuzzed(f"http://127.0.0.1:{intake_settings.http_port}", admin, member)
    finally:
        if http is not None and thread is not None:
            http.should_exit = True
            thread.join(timeout=15)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _openapi() -> dict:
    """The intake's OpenAPI document, from the app itself (building it connects to nothing)."""
    return create_app(IntakeSettings(), registry=CollectorRegistry()).openapi()


schema = schemathesis.openapi.from_dict(_openapi())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_answers_match_the_schema(case, fuzzed):
    token = fuzzed.admin if case.operation.path.startswith("/v1/tokens") else fuzzed.member
    EXAMPLES[f"{case.operation.method.upper()} {case.operation.path}"] += 1
    case.call_and_validate(
        base_url=fuzzed.base,
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, response_schema_conformance],
        timeout=30,
    )


def test_every_operation_was_fuzzed(capsys):
    operations = {
        f"{method.upper()} {path}"
        for path, methods in schema.raw_schema["paths"].items()
        for method in methods
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert operations
    assert operations <= set(EXAMPLES), sorted(operations - set(EXAMPLES))
    with capsys.disabled():
        print(f"\nschemathesis: {len(operations)} operations, {sum(EXAMPLES.values())} examples")
