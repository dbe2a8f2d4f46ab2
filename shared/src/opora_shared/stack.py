"""The four services as separate processes: started, watched, killed and restarted.

Used by ``opora run`` (``make run``), the end-to-end tests and the benchmarks, so all three
start Opora the same way.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from opora_shared.errors import NotReadyError
from opora_shared.nats.server import set_parent_death_signal
from opora_shared.nats.streams import provision
from opora_shared.tokens import ensure_admin_token

SERVICES: dict[str, str] = {
    "intake": "opora_intake",
    "classifier": "opora_classifier",
    "sla-timer": "opora_sla_timer",
    "notifier": "opora_notifier",
}
"""Service name -> module run with ``python -m``."""


def service_env(
    nats_url: str, var: Path, *, contracts_dir: Path, http_port: int, smtp_port: int
) -> dict[str, str]:
    """The environment of a stack's services: ours without any OPORA_ setting, then theirs."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPORA_")},
        "OPORA_NATS_URL": nats_url,
        "OPORA_VAR_DIR": str(var),
        "OPORA_CONTRACTS_DIR": str(contracts_dir),
        "OPORA_HTTP_PORT": str(http_port),
        "OPORA_SMTP_PORT": str(smtp_port),
        "PYTHONUNBUFFERED": "1",
    }


async def prepare_nats(url: str, token_file: Path) -> str:
    """Provision a fresh NATS for a stack and make sure it has an admin token; the token."""
    import nats

    nc = await nats.connect(url)
    try:
        await provision(nc.jetstream())
        token, _ = await ensure_admin_token(nc.jetstream(), token_file)
        return token
    finally:
        await nc.close()


@dataclass
class ServiceProcess:
    """One service process; its output goes to a log file or to ours."""

    name: str
    env: dict[str, str]
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        """Start (or restart) the process in its own process group."""
        out: IO[bytes] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", SERVICES[self.name]],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                process_group=0,
                preexec_fn=set_parent_death_signal,
            )
        finally:
            if out is not None:
                out.close()

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 15.0) -> None:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout``."""
        if not self.running or self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def kill9(self) -> None:
        """SIGKILL now: a crash, with no chance to ack or clean up."""
        if self.running and self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class Stack:
    """All four services against one NATS, sharing one environment."""

    env: dict[str, str]
    log_dir: Path | None = None
    per_service: dict[str, dict[str, str]] = field(default_factory=dict)
    """Extra environment for one service (e.g. its own OPORA_METRICS_PORT)."""
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SERVICES:
            log_path = self.log_dir / f"{name}.log" if self.log_dir else None
            env = {**self.env, **self.per_service.get(name, {})}
            self.services[name] = ServiceProcess(name, env, log_path)

    def start(self) -> None:
        """Start every service."""
        for service in self.services.values():
            service.start()

    def stop(self) -> None:
        """Stop every service gracefully, intake first so no new work arrives."""
        for service in self.services.values():
            if service.running and service.process is not None:
                service.process.send_signal(signal.SIGTERM)
        for service in self.services.values():
            service.stop()

    def dead(self) -> list[str]:
        """Services whose process has exited."""
        return [name for name, svc in self.services.items() if not svc.running]

    def wait_http_ready(
        self, url: str, *, timeout: float = 30.0, give_up: Callable[[], bool] = lambda: False
    ) -> None:
        """Poll an HTTP readiness endpoint with a deadline; fail fast if a service dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not give_up():
            if dead := self.dead():
                msg = f"service(s) exited during start-up: {', '.join(dead)}"
                raise NotReadyError(msg)
            try:
                with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        if give_up():
            return
        msg = f"{url} not ready within {timeout}s"
        raise NotReadyError(msg)
