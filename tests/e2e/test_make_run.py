"""`opora run` (what `make run` starts): NATS and four services up, a token, a clean stop, reuse."""

import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from opora_shared.nats.server import free_port
from opora_shared.testing.plugin import REPO_ROOT
from opora_shared.testing.waiting import poll_until


class Launcher:
    """`opora run` as a child process, its output collected by a reader thread."""

    def __init__(self, var: Path, http_port: int, nats_port: int, monitor_port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPORA_")}
        env |= {
            "OPORA_VAR_DIR": str(var),
            "OPORA_HTTP_PORT": str(http_port),
            "OPORA_METRICS_PORT": "0",
            "OPORA_SMTP_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opora_shared.cli",
                "run",
                "--nats-port",
                str(nats_port),
                "--nats-monitor-port",
                str(monitor_port),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_banner(self) -> str:
        def banner():
            assert self.process.poll() is None, self.output()[-3000:]
            return "Opora is running" in self.output()

        poll_until(banner, timeout=90, interval=0.1, message="the banner")
        return self.output()

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code


def processes_of(var: Path) -> list[int]:
    """PIDs whose command line or environment names this stack's var directory."""
    marker = str(var).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            text = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in text:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs Linux /proc to look for orphans")
class TestOporaRun:
    def test_starts_serves_stops_cleanly_and_reuses_its_data(self, tmp_path):
        var = tmp_path / "var"
        ports = {"http_port": free_port(), "nats_port": free_port(), "monitor_port": free_port()}
        http = f"http://127.0.0.1:{ports['http_port']}"

        first = Launcher(var, **ports)
        banner = first.wait_banner()
        token_file = var / "admin.token"
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert token in banner, "the first start prints the new admin token"
        assert f"nats://127.0.0.1:{ports['nats_port']}" in banner
        response = httpx.post(
            f"{http}/v1/tickets",
            json={
                "from": "anna@romashka.ru",
                "subject": "Принтер не печатает",
                "body": "Замяло бумагу",
            },
        )
        assert response.status_code == 202
        ticket_id = response.json()["id"]
        poll_until(lambda: list((var / "outbox").glob(f"{ticket_id}-*.eml")), timeout=15)
        assert len(processes_of(var)) >= 5  # nats-server and four services

        assert first.stop(signal.SIGINT) == 0
        assert "opora: stopped" in first.output()
        assert processes_of(var) == [], "orphans left behind"

        second = Launcher(var, **ports)
        banner = second.wait_banner()
        assert token not in banner, "the token is printed only when it is created"
        assert token_file.read_text().strip() == token
        read = httpx.get(
            f"{http}/v1/tickets/{ticket_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert read.status_code == 200, "the first run's ticket survives the restart"
        assert read.json()["classification"] is not None
        again = httpx.post(
            f"{http}/v1/tickets",
            json={"from": "anna@romashka.ru", "subject": "Ещё", "body": "Не печатает снова"},
        )
        assert again.json()["id"] != ticket_id
        assert second.stop(signal.SIGTERM) == 0
        assert processes_of(var) == []
