"""Stand-ins for the notifier's receivers, for tests: a real SMTP relay and a real HTTP server.

``FakeRelay`` is aiosmtpd on 127.0.0.1 (optionally STARTTLS and AUTH); ``FakeReceiver`` a small
asyncio HTTP/1.1 server standing in for the Telegram Bot API, a Slack/Mattermost incoming
webhook or a generic webhook receiver. Both take a script of failures for their next
requests: SMTP ``451`` / ``550`` answers to DATA, a reply that never comes after the mail was
taken (``swallow``); HTTP ``500``, ``503``, ``429``, ``400``, a connection reset before any
answer (``reset``), an answer slower than the client waits (``hang``). Only what they accepted
counts as delivered. Not used by the service itself.
"""

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _RelayHandler:
    def __init__(self, relay: "FakeRelay") -> None:
        self.relay = relay

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        del server, session
        with self.relay.lock:
            self.relay.attempts += 1
            action = self.relay.script.pop(0) if self.relay.script else "ok"
        if action == "451":
            return "451 4.3.0 Temporary failure, try again later"
        if action == "550":
            return "550 5.1.1 Mailbox unavailable"
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        with self.relay.lock:
            self.relay.received.append(message_from_bytes(data, policy=policy.default))
            self.relay.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos)))
        if action == "swallow":  # took the mail, but the answer never comes
            await asyncio.sleep(self.relay.hang_s)
        return "250 2.0.0 OK"


class FakeRelay:
    """An SMTP server on 127.0.0.1 that keeps what it accepts, with scripted failures."""

    def __init__(
        self,
        *,
        tls: tuple[Path, Path] | None = None,
        credentials: tuple[str, str] | None = None,
        hang_s: float = 5.0,
    ) -> None:
        self.lock = threading.Lock()
        self.received: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.script: list[str] = []
        self.attempts = 0
        self.hang_s = hang_s
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            kwargs.update(tls_context=context, require_starttls=True)
        if credentials is not None:

            def authenticate(
                server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
            ) -> AuthResult:
                del server, session, envelope, mechanism
                ok = (
                    isinstance(data, LoginPassword)
                    and (
                        data.login.decode(),
                        data.password.decode(),
                    )
                    == credentials
                )
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticate, auth_required=True)
            kwargs.setdefault("auth_require_tls", tls is not None)
        self._controller = Controller(
            _RelayHandler(self), hostname="127.0.0.1", port=self.port, **kwargs
        )

    def fail_next(self, *actions: str) -> None:
        """Script the answers to the next DATA commands (then: accept)."""
        with self.lock:
            self.script.extend(actions)

    def start(self) -> "FakeRelay":
        """Start serving (in its own thread)."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        """The accepted mails addressed to one recipient."""
        with self.lock:
            return [
                m
                for m, (_, rcpts) in zip(self.received, self.envelopes, strict=True)
                if address in rcpts
            ]


@dataclass
class HttpRequest:
    """One request the receiver accepted."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class FakeReceiver:
    """A local HTTP server: 200 with a Telegram-like body, unless scripted to fail."""

    hang_s: float = 5.0
    script: list[str] = field(default_factory=list)
    accepted: list[HttpRequest] = field(default_factory=list)
    attempts: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, *actions: str) -> None:
        """Script the next answers: 500, 503, 429, 400, reset, hang (then: 200)."""
        self.script.extend(actions)

    def to(self, path_part: str) -> list[HttpRequest]:
        """Accepted requests whose path contains this."""
        return [r for r in self.accepted if path_part in r.path]

    async def start(self) -> "FakeReceiver":
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                self.attempts += 1
                action = self.script.pop(0) if self.script else "ok"
                if action == "reset":
                    sock = writer.get_extra_info("socket")
                    if sock is not None:  # RST instead of FIN
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                        )
                    writer.transport.abort()
                    return
                if action == "hang":
                    await asyncio.sleep(self.hang_s)
                    writer.close()
                    return
                if action == "ok":
                    self.accepted.append(request)
                    body = json.dumps(
                        {"ok": True, "result": {"message_id": len(self.accepted)}}
                    ).encode()
                    writer.write(_response(200, body))
                else:
                    status = int(action)
                    extra = {"Retry-After": "0"} if status == 429 else {}
                    body = json.dumps({"ok": False, "description": f"scripted {status}"}).encode()
                    writer.write(_response(status, body, extra))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


async def _read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return HttpRequest(method, path, headers, body)


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} Scripted", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
