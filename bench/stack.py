"""A fresh Opora stack for the benchmarks: nats-server and the four services as processes.

``launch`` starts nats-server with Opora's config (``sync_interval: always``) or with the same
config minus that line (the server's lazy default, a two-minute fsync), provisions it, then
starts the four services the way ``make run`` does (``opora_shared.stack``). The load
generators' rate limits are lifted (the benchmark is one client at thousands of requests per
second); everything else is Opora's defaults.
"""

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from opora_shared.nats.server import NatsServer, free_port
from opora_shared.stack import SERVICES, Stack, prepare_nats, service_env

REPO_ROOT = Path(__file__).resolve().parent.parent
NATS_CONFIG = REPO_ROOT / "deploy" / "nats" / "nats-server.conf"

SYNC_MODES = ("always", "default")
"""``always``: Opora's config, fsync on every write; ``default``: the server's two-minute fsync."""


def nats_config(sync: str, directory: Path) -> Path:
    """Opora's nats-server config, or the same without ``sync_interval`` (the server default)."""
    if sync not in SYNC_MODES:
        msg = f"sync must be one of {SYNC_MODES}, not {sync!r}"
        raise ValueError(msg)
    if sync == "always":
        return NATS_CONFIG
    lines = NATS_CONFIG.read_text().splitlines()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "nats-server.default-sync.conf"
    path.write_text("\n".join(line for line in lines if "sync_interval" not in line) + "\n")
    return path


@dataclass
class BenchStack:
    """A started stack and where to reach it."""

    stack: Stack
    nats: NatsServer
    http: str
    smtp_port: int
    admin_token: str
    var: Path
    root: Path

    def stop(self) -> None:
        """Stop the services (they drain), then NATS; remove the store."""
        self.stack.stop()
        self.nats.stop()

    def remove(self) -> None:
        """Delete the run's data (NATS store, outbox)."""
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(root: Path, sync: str) -> NatsServer:
    """nats-server on free ports with the chosen fsync policy."""
    server = NatsServer(
        store_dir=root / "nats" / "store",
        config=nats_config(sync, root / "nats"),
        port=free_port(),
        monitor_port=free_port(),
        log_file=root / "nats" / "nats.log",
    )
    return server.start()


def launch(root: Path, *, sync: str = "always", **extra_env: str) -> BenchStack:
    """NATS on free ports, provisioned, then the four services as processes, ready."""
    shutil.rmtree(root, ignore_errors=True)
    server = start_server(root, sync)
    var = root / "var"
    token = asyncio.run(prepare_nats(server.url, var / "admin.token"))
    http_port, smtp_port = free_port(), free_port()
    contracts = REPO_ROOT / "deploy" / "contracts"
    env = {
        **service_env(
            server.url, var, contracts_dir=contracts, http_port=http_port, smtp_port=smtp_port
        ),
        "OPORA_RATE_LIMIT_IP_PER_S": "100000",
        "OPORA_RATE_LIMIT_IP_BURST": "100000",
        "OPORA_RATE_LIMIT_TOKEN_PER_S": "100000",
        "OPORA_RATE_LIMIT_TOKEN_BURST": "100000",
        "OPORA_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    stack = Stack(
        env=env,
        log_dir=root / "logs",
        per_service={name: {"OPORA_METRICS_PORT": str(free_port())} for name in SERVICES},
    )
    stack.start()
    http = f"http://127.0.0.1:{http_port}"
    try:
        stack.wait_http_ready(f"{http}/readyz", timeout=90)
    except Exception:
        stack.stop()
        server.stop()
        raise
    return BenchStack(stack, server, http, smtp_port, token, var, root)
