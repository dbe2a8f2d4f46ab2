"""End-to-end tests: the four services as separate processes, real HTTP, a NATS of their own."""

import asyncio
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opora_shared.nats.server import NatsServer, free_port
from opora_shared.stack import SERVICES, Stack, prepare_nats, service_env
from opora_shared.testing.plugin import REPO_ROOT, start_nats


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@dataclass
class RunningStack:
    """A started stack and where to reach it."""

    stack: Stack
    nats: NatsServer
    http: str
    var: Path
    admin_token: str
    metrics_ports: dict[str, int]
    smtp_port: int

    @property
    def outbox(self) -> Path:
        return self.var / "outbox"


def launch(tmp: Path, **extra_env: str) -> RunningStack:
    """NATS on free ports, provisioned, then the four services as processes."""
    server = start_nats(tmp / "nats" / "store")
    var = tmp / "var"
    token = asyncio.run(prepare_nats(server.url, var / "admin.token"))
    http_port, smtp_port = free_port(), free_port()
    metrics = {name: free_port() for name in SERVICES}
    contracts = REPO_ROOT / "deploy" / "contracts"
    env = {
        **service_env(
            server.url, var, contracts_dir=contracts, http_port=http_port, smtp_port=smtp_port
        ),
        **extra_env,
    }
    stack = Stack(
        env=env,
        log_dir=tmp / "logs",
        per_service={n: {"OPORA_METRICS_PORT": str(p)} for n, p in metrics.items()},
    )
    stack.start()
    http = f"http://127.0.0.1:{http_port}"
    try:
        stack.wait_http_ready(f"{http}/readyz", timeout=60)
    except Exception:
        stack.stop()
        server.stop()
        dump_logs(tmp / "logs")
        raise
    return RunningStack(stack, server, http, var, token, metrics, smtp_port)


def dump_logs(log_dir: Path) -> None:
    for path in sorted(log_dir.glob("*.log")):
        sys.stderr.write(f"----- {path.name} -----\n{path.read_text(errors='replace')[-4000:]}\n")


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[RunningStack]:
    """One stack per test module."""
    tmp = tmp_path_factory.mktemp("stack")
    handle = launch(tmp)
    yield handle
    handle.stack.stop()
    handle.nats.stop()
    shutil.rmtree(tmp / "nats", ignore_errors=True)
