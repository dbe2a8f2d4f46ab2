"""IMAP poller of the intake: pulls mail from a provider's support mailbox and hands it on.

For each message in the watched folder (by UID, oldest first) it fetches the raw bytes with
``BODY.PEEK[]`` (nothing is marked seen before it is handled), awaits ``on_message(raw)`` and
only then moves the message to the processed folder. A failing handler leaves the message where
it was, to be retried on the next pass; after ``max_failures`` failures in this process it is
moved to the failed folder. It never deletes mail otherwise: the only expunge is ``UID EXPUNGE``
of the one message it has just copied, and only on servers with UIDPLUS.

Delivery is at least once: a crash between the handler and the move hands the message over
again, so the handler must be idempotent (the intake derives event ids from the Message-ID).
It waits with IMAP IDLE when the server offers it, else polls; it reconnects with capped
exponential back-off. It logs UIDs and counts only, never addresses, subjects or bodies.
Folder names use ``/`` as the hierarchy separator whatever the server's is.
"""

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self, TypeVar

import aioimaplib
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from opora_intake.errors import IntakeError
from opora_shared.tasks import stop_task

T = TypeVar("T")

MAX_FAILURES = 5
IDLE_REFRESH_S = 600.0  # RFC 2177 allows 29 min; NAT boxes and some servers cut sooner
COMMAND_TIMEOUT_S = 30.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 60.0
STOP_GRACE_S = 0.5  # how long a step in flight may finish once `stop` is set
LOGOUT_TIMEOUT_S = 1.0

# aioimaplib strips "* LIST " from the lines it returns: (flags) "delimiter" name
_LIST_RE = re.compile(rb'^\([^)]*\) (?:NIL|"((?:\\.|[^"\\])*)")')
_UIDVALIDITY_RE = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_BODY_RE = re.compile(rb"^\d+ FETCH \(.*BODY\[\] \{\d+\}$")
_FETCH_UID_RE = re.compile(rb"UID (\d+)")

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes], Awaitable[None]]


class ImapError(IntakeError):
    """The IMAP server refused a step or broke the session off; the poller reconnects."""


_LIBRARY_ERRORS = (OSError, TimeoutError, aioimaplib.AioImapException)
_SESSION_ERRORS = (ImapError, *_LIBRARY_ERRORS)


class ImapMailbox(BaseModel):
    """One support mailbox to pull mail from, and the folders handled and failed mail go to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535, description="993 for ssl, 143 for starttls or plain")
    ssl: bool = Field(default=True, description="implicit TLS (IMAPS)")
    starttls: bool = Field(default=False, description="upgrade a plain connection with STARTTLS")
    username: str = Field(min_length=1)
    password: SecretStr
    folder: str = Field(default="INBOX", min_length=1)
    processed_folder: str = Field(default="Opora/Processed", min_length=1)
    failed_folder: str = Field(default="Opora/Failed", min_length=1)
    poll_interval_s: float = Field(default=30.0, gt=0, description="when the server has no IDLE")
    idle: bool = Field(default=True, description="use IMAP IDLE when the server offers it")
    tenant_hint: str | None = Field(default=None, description="tenant of this mailbox's mail")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.ssl and self.starttls:
            msg = "choose ssl (implicit TLS, port 993) or starttls (port 143), not both"
            raise ValueError(msg)
        if self.folder in (self.processed_folder, self.failed_folder):
            msg = "processed_folder and failed_folder must differ from folder"
            raise ValueError(msg)
        return self

    @property
    def log_ref(self) -> str:
        """An opaque name for logs: the tenant hint and a digest, never the address."""
        where = f"{self.username}@{self.host}:{self.port}/{self.folder}"
        digest = hashlib.sha256(where.encode()).hexdigest()[:8]
        return f"{self.tenant_hint or '-'}/{digest}"


class PollerState(StrEnum):
    """What the poller is doing now (for health checks and tests)."""

    STARTING = "starting"
    """Created, not connected yet."""
    CONNECTING = "connecting"
    """Connecting, logging in, creating folders, selecting."""
    POLLING = "polling"
    """Handling the folder's messages."""
    IDLE = "idle"
    """In IMAP IDLE: the server will push new mail."""
    WAITING = "waiting"
    """Waiting for the next poll (the server has no IDLE, or it is off)."""
    BACKOFF = "backoff"
    """Waiting to reconnect after an error."""
    STOPPED = "stopped"
    """``run`` has returned."""


@dataclass
class _Session:
    """One logged-in connection with what was learnt about the server."""

    client: aioimaplib.IMAP4
    lost: asyncio.Event
    delimiter: str | None = None

    def has(self, capability: str) -> bool:
        """Whether the server advertised this capability (after login)."""
        return capability.upper() in {c.upper() for c in self.client.protocol.capabilities}


class ImapPoller:
    """Pulls one mailbox's mail into ``on_message`` and files each message once handled.

    Use either ``run(stop)`` or ``poll_once()`` (then ``aclose()``), not both at once.
    """

    def __init__(
        self,
        mailbox: ImapMailbox,
        on_message: MessageHandler,
        *,
        log: logging.Logger = log,
        max_failures: int = MAX_FAILURES,
        idle_refresh_s: float = IDLE_REFRESH_S,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.state = PollerState.STARTING
        self._on_message = on_message
        self._log = log
        self._ref = mailbox.log_ref
        self._max_failures = max_failures
        self._idle_refresh_s = idle_refresh_s
        self._timeout = command_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._ssl_context = ssl_context
        self._session: _Session | None = None
        self._failures: dict[int, int] = {}  # UID -> failed handler calls, in this process
        self._uidvalidity: int | None = None
        self._warned: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Handle mail until ``stop`` is set; reconnect on errors, never raise."""
        worker = asyncio.create_task(self._serve(stop))
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not worker.done():
                # The loop sees `stop` between messages and while it waits; a fetch or a
                # handler call in flight gets a moment to finish before it is cancelled.
                await asyncio.wait({worker}, timeout=STOP_GRACE_S)
        finally:
            stopper.cancel()
            # cancelled again if nats-py's flush swallowed the first cancel (it publishes)
            await stop_task(worker)
            if not worker.cancelled() and worker.exception() is not None:
                error = worker.exception()
                self._log.error("imap %s: loop ended by %s", self._ref, type(error).__name__)
            await self.aclose()
            self.state = PollerState.STOPPED

    async def poll_once(self) -> int:
        """One pass over the folder (connecting if needed); how many messages were handled."""
        try:
            session = await self._connected()
            self.state = PollerState.POLLING
            return await self._pass(session, None)
        except _LIBRARY_ERRORS as exc:
            self._drop()
            msg = f"IMAP pass failed ({type(exc).__name__})"
            raise ImapError(msg) from exc
        except ImapError:
            self._drop()
            raise

    async def aclose(self) -> None:
        """Log out (briefly) and close the connection; the poller may connect again later."""
        session = self._session
        if session is None:
            return
        if not session.lost.is_set() and not session.client.has_pending_idle():
            with contextlib.suppress(Exception):
                await self._call(session, session.client.logout(), timeout=LOGOUT_TIMEOUT_S)
        self._drop()

    # The loop

    async def _serve(self, stop: asyncio.Event) -> None:
        delay = self._backoff_initial_s
        while not stop.is_set():
            try:
                session = await self._connected()
                self.state = PollerState.POLLING
                await self._pass(session, stop)
                delay = self._backoff_initial_s
                if stop.is_set():
                    break
                await self._wait_for_mail(session, stop)
            except Exception as exc:
                self._drop()
                wait = delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
                if isinstance(exc, _SESSION_ERRORS):
                    self._log.warning(
                        "imap %s: %s; reconnecting in %.1f s", self._ref, _describe(exc), wait
                    )
                else:
                    self._log.error(
                        "imap %s: unexpected %s; reconnecting in %.1f s",
                        self._ref,
                        type(exc).__name__,
                        wait,
                    )
                    self._log.debug("imap %s: traceback", self._ref, exc_info=exc)
                self.state = PollerState.BACKOFF
                await _wait_event(stop, wait)
                delay = min(delay * 2, self._backoff_max_s)

    async def _pass(self, session: _Session, stop: asyncio.Event | None) -> int:
        """Hand over every message once; search again until no new UID turns up."""
        attempted: set[int] = set()
        handled = 0
        while True:
            uids = [uid for uid in await self._search(session) if uid not in attempted]
            if not uids:
                break
            for uid in uids:
                if stop is not None and stop.is_set():
                    return handled
                attempted.add(uid)
                handled += await self._handle(session, uid)
        if attempted:
            self._log.info(
                "imap %s: pass handled %d of %d message(s)", self._ref, handled, len(attempted)
            )
        return handled

    async def _handle(self, session: _Session, uid: int) -> bool:
        raw = await self._fetch(session, uid)
        if raw is None:
            self._log.info("imap %s: uid %d vanished before it was fetched", self._ref, uid)
            return False
        try:
            await self._on_message(raw)
        except Exception as exc:
            failures = self._failures.get(uid, 0) + 1
            self._failures[uid] = failures
            self._log.warning(
                "imap %s: handler failed for uid %d (%s), attempt %d of %d",
                self._ref,
                uid,
                type(exc).__name__,
                failures,
                self._max_failures,
            )
            if failures >= self._max_failures:
                await self._move(session, uid, self.mailbox.failed_folder)
                del self._failures[uid]
                self._log.error(
                    "imap %s: uid %d moved to the failed folder after %d failures",
                    self._ref,
                    uid,
                    failures,
                )
            return False
        self._failures.pop(uid, None)
        await self._move(session, uid, self.mailbox.processed_folder)
        self._log.debug("imap %s: uid %d handled and moved", self._ref, uid)
        return True

    async def _wait_for_mail(self, session: _Session, stop: asyncio.Event) -> None:
        if self.mailbox.idle and session.has("IDLE"):
            await self._idle(session, stop)
        else:
            self.state = PollerState.WAITING
            await _wait_event(stop, self.mailbox.poll_interval_s)

    async def _idle(self, session: _Session, stop: asyncio.Event) -> None:
        """IDLE until new mail, ``stop`` or the refresh period; then end IDLE cleanly."""
        client = session.client
        queue = client.protocol.idle_queue
        while not queue.empty():  # pushes from before this IDLE are stale
            queue.get_nowait()
        idle = await self._call(session, client.idle_start(timeout=self._idle_refresh_s))
        self.state = PollerState.IDLE
        reason = await self._idle_until_wake(session, stop)
        self._log.debug("imap %s: idle ended (%s)", self._ref, reason)
        client.idle_done()
        response = await self._call(session, idle)
        if response.result != "OK":
            msg = "the server ended IDLE with an error"
            raise ImapError(msg)

    async def _idle_until_wake(self, session: _Session, stop: asyncio.Event) -> str:
        client = session.client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._idle_refresh_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return "refresh"
            push = asyncio.ensure_future(client.wait_server_push(timeout=remaining))
            stopped = asyncio.ensure_future(stop.wait())
            lost = asyncio.ensure_future(session.lost.wait())
            try:
                await asyncio.wait({push, stopped, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (push, stopped, lost):
                    task.cancel()
            if lost.done() and not lost.cancelled():
                msg = "connection lost while idling"
                raise ImapError(msg)
            if stopped.done() and not stopped.cancelled():
                return "stop"
            try:
                lines = push.result()
            except TimeoutError:
                return "refresh"
            if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                return "refresh"
            data = [bytes(line) for line in lines]
            if any(line.startswith(b"BYE") for line in data):
                msg = "the server closed the session"
                raise ImapError(msg)
            if any(line.endswith((b" EXISTS", b" RECENT")) for line in data):
                return "new mail"
            # "OK Still here", flag changes, expunges by others: keep idling

    # Connection

    async def _connected(self) -> _Session:
        if self._session is not None and not self._session.lost.is_set():
            return self._session
        self._drop()
        self.state = PollerState.CONNECTING
        mailbox = self.mailbox
        context = None
        if mailbox.ssl or mailbox.starttls:
            context = self._ssl_context or ssl.create_default_context()
        lost = asyncio.Event()
        client = aioimaplib.IMAP4(
            host=mailbox.host,
            port=mailbox.port,
            timeout=self._timeout,
            conn_lost_cb=lambda _exc: lost.set(),
            ssl_context=context if mailbox.ssl else None,
        )
        session = _Session(client=client, lost=lost)
        self._session = session
        await self._call(session, client.wait_hello_from_server())
        if mailbox.starttls and context is not None:
            await self._starttls(session, context)
        elif not mailbox.ssl and not _is_loopback(mailbox.host):
            self._warn_once("plaintext", "imap %s: logging in without TLS", self._ref)
        response = await self._call(
            session, client.login(mailbox.username, mailbox.password.get_secret_value())
        )
        if response.result != "OK":
            msg = "login refused"
            raise ImapError(msg)
        await self._call(session, client.protocol.capability())  # the full post-login list
        session.delimiter = await self._delimiter(session)
        await self._ensure_folder(session, mailbox.processed_folder, "processed")
        await self._ensure_folder(session, mailbox.failed_folder, "failed")
        await self._select(session)
        self._log.info(
            "imap %s: connected (idle=%s, move=%s, uidplus=%s)",
            self._ref,
            session.has("IDLE"),
            session.has("MOVE"),
            session.has("UIDPLUS"),
        )
        return session

    async def _starttls(self, session: _Session, context: ssl.SSLContext) -> None:
        protocol = session.client.protocol
        if not session.has("STARTTLS"):
            msg = "the server does not offer STARTTLS"
            raise ImapError(msg)
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._call(session, protocol.execute(command))
        if response.result != "OK":
            msg = "STARTTLS refused"
            raise ImapError(msg)
        loop = asyncio.get_running_loop()
        upgrade = loop.start_tls(
            protocol.transport, protocol, context, server_hostname=self.mailbox.host
        )
        protocol.transport = await self._call(session, upgrade)
        await self._call(session, protocol.capability())  # what was said in clear is void

    def _drop(self) -> None:
        """Forget the session at once (no LOGOUT), cancelling the library's tasks."""
        session, self._session = self._session, None
        if session is None:
            return
        client = session.client
        waiter = getattr(client, "_idle_waiter", None)
        if waiter is not None:
            waiter.cancel()
        tasks = [*client.tasks, *client.protocol.tasks, getattr(client, "_client_task", None)]
        for task in tasks:
            if task is None:
                continue
            if task.done():
                if not task.cancelled():
                    task.exception()  # retrieved, so asyncio does not report it at exit
            else:
                task.cancel()
        transport = client.protocol.transport
        if transport is not None:
            transport.close()
        session.lost.set()

    async def _call(
        self,
        session: _Session,
        step: Awaitable[T],
        *,
        timeout: float | None = None,
        bounded: bool = True,
    ) -> T:
        """Await one IMAP step; fail fast when the connection drops or the server stalls.

        ``timeout`` defaults to the command timeout; ``bounded=False`` waits without one.
        """
        task = asyncio.ensure_future(step)
        lost = asyncio.ensure_future(session.lost.wait())
        if bounded and timeout is None:
            timeout = self._timeout
        try:
            await asyncio.wait({task, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        msg = "connection lost" if session.lost.is_set() else "the server did not answer in time"
        raise ImapError(msg)

    # Commands

    async def _delimiter(self, session: _Session) -> str | None:
        response = await self._call(session, session.client.list('""', '""'))
        for line in response.lines[:-1]:
            match = _LIST_RE.match(bytes(line))
            if match:
                raw: bytes | None = match.group(1)
                return re.sub(r"\\(.)", r"\1", raw.decode()) if raw else None
        return None

    def _wire_name(self, session: _Session, folder: str) -> str:
        """A folder name as the server wants it: its separator, modified UTF-7, quoted."""
        if session.delimiter and session.delimiter != "/":
            folder = folder.replace("/", session.delimiter)
        return _quote(encode_mailbox_name(folder))

    async def _folder_exists(self, session: _Session, name: str) -> bool:
        response = await self._call(session, session.client.list('""', name))
        # The last line is the tagged completion text; any line before it is a match.
        return response.result == "OK" and any(
            _LIST_RE.match(bytes(line)) for line in response.lines[:-1]
        )

    async def _ensure_folder(self, session: _Session, folder: str, kind: str) -> None:
        name = self._wire_name(session, folder)
        if await self._folder_exists(session, name):
            return
        response = await self._call(session, session.client.create(name))
        if response.result != "OK" and not await self._folder_exists(session, name):
            msg = "could not create the processed or failed folder"
            raise ImapError(msg)
        await self._call(session, session.client.subscribe(name))  # so mail clients show it
        self._log.info("imap %s: created the %s folder", self._ref, kind)

    async def _select(self, session: _Session) -> None:
        name = self._wire_name(session, self.mailbox.folder)
        response = await self._call(session, session.client.select(name))
        if response.result != "OK":
            msg = "could not select the folder"
            raise ImapError(msg)
        uidvalidity = None
        for line in response.lines:
            match = _UIDVALIDITY_RE.search(bytes(line))
            if match:
                uidvalidity = int(match.group(1))
        if uidvalidity != self._uidvalidity:
            self._failures.clear()  # the UIDs counted so far meant other messages
            self._uidvalidity = uidvalidity

    async def _search(self, session: _Session) -> list[int]:
        """UIDs of the folder's messages, oldest first (not those flagged \\Deleted)."""
        response = await self._call(session, session.client.uid_search("UNDELETED", charset=None))
        if response.result != "OK":
            msg = "UID SEARCH refused"
            raise ImapError(msg)
        uids: set[int] = set()
        for line in response.lines[:-1]:  # the last line is the tagged completion text
            uids.update(int(token) for token in bytes(line).split() if token.isdigit())
        return sorted(uids)

    async def _fetch(self, session: _Session, uid: int) -> bytes | None:
        """The raw message without setting \\Seen; None when it is gone."""
        # No overall deadline: the library's own timer fails a fetch that stops receiving.
        fetch = session.client.uid("FETCH", str(uid), "(UID BODY.PEEK[])")
        response = await self._call(session, fetch, bounded=False)
        if response.result != "OK":
            msg = "UID FETCH refused"
            raise ImapError(msg)
        lines = response.lines
        for index, line in enumerate(lines[:-1]):
            if not isinstance(line, bytes) or not _FETCH_BODY_RE.match(line):
                continue
            uid_match = _FETCH_UID_RE.search(line)
            if uid_match and int(uid_match.group(1)) != uid:
                continue  # an unsolicited FETCH about another message
            return bytes(lines[index + 1])
        return None

    async def _move(self, session: _Session, uid: int, folder: str) -> None:
        """Move one message: UID MOVE, else UID COPY + \\Deleted + UID EXPUNGE of that UID."""
        client = session.client
        target = self._wire_name(session, folder)
        if session.has("MOVE"):
            await self._expect_ok(session, client.uid("MOVE", str(uid), target), "UID MOVE")
            return
        await self._expect_ok(session, client.uid("COPY", str(uid), target), "UID COPY")
        store = client.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
        await self._expect_ok(session, store, "UID STORE")
        if session.has("UIDPLUS"):
            await self._expect_ok(session, client.uid("EXPUNGE", str(uid)), "UID EXPUNGE")
        else:
            # A plain EXPUNGE would also remove what the mailbox's people flagged \Deleted.
            self._warn_once(
                "no-uidplus",
                "imap %s: server lacks MOVE and UIDPLUS; handled mail stays flagged \\Deleted",
                self._ref,
            )

    async def _expect_ok(self, session: _Session, step: Awaitable[Any], what: str) -> None:
        response = await self._call(session, step)
        if response.result != "OK":
            msg = f"{what} refused"
            raise ImapError(msg)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._log.warning(message, *args)


def encode_mailbox_name(name: str) -> str:
    """A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3), so Cyrillic names work."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(utf16).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _quote(name: str) -> str:
    """An IMAP quoted string (RFC 3501 section 9)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` passes, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe(exc: Exception) -> str:
    """An error for the log: our own messages (they carry no data) or the type's name."""
    return str(exc) if isinstance(exc, ImapError) else type(exc).__name__
