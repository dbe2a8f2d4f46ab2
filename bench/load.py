"""Load through Opora's real channels, and the clock that times each ticket to its acknowledgement.

Every generated ticket carries a marker (``bench-<run>-<n>``) in its subject. ``Observer``
listens on NATS (core subscriptions, no consumer state) to ``ticket.received``, which maps the
marker to the ticket number, and to the event that ends the ticket's way through Opora:
``notification.sent`` with trigger ``acknowledgement`` (the notifier publishes it after it
wrote the client's acknowledgement) for tickets from people, ``sla.armed`` for tickets from
monitoring tools, whose requester is a robot that gets no acknowledgement. Latency is from just
before the channel call (HTTP request, SMTP transaction, NATS publish) to that event, on one
monotonic clock in one process.

Channels:
- ``http``: ``POST /v1/tickets`` (the web form's and the API's path), keep-alive connections;
- ``smtp``: a mail to the support address over a kept-open SMTP session (aiosmtplib);
- ``nats``: the generic integrator event on ``opora.in.<tenant>.events`` (an alert storm).
"""

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiohttp
import aiosmtplib
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

CHANNELS = ("http", "smtp", "nats")

REQUESTERS = (("anna@romashka.ru", "romashka"), ("ivan@vector-logistics.com", "vector"))
BODIES = (
    "Не печатает принтер в бухгалтерии, пишет замятие бумаги, хотя бумаги внутри нет.",
    "Outlook keeps asking for the password since this morning, three people affected.",
    "Нужно завести учётную запись для нового сотрудника отдела продаж с понедельника.",
    "The VPN drops every ten minutes for the warehouse team, they cannot scan orders.",
)


def web_ticket(marker: str, requester: str, body: str) -> dict[str, str]:
    """A ``POST /v1/tickets`` body carrying the marker."""
    return {"from": requester, "subject": f"{marker} принтер", "body": body}


def support_mail(marker: str, requester: str, body: str) -> EmailMessage:
    """A client's mail to the support address carrying the marker (also its Message-ID)."""
    mail = EmailMessage()
    mail["From"] = requester
    mail["To"] = "support@opora.local"
    mail["Subject"] = f"{marker} не работает почта"
    mail["Message-ID"] = f"<{marker}@bench.example>"
    mail.set_content(body)
    return mail


def alert_event(marker: str) -> bytes:
    """A generic integrator event (an alert) carrying the marker, also as its dedup key."""
    event = {
        "source": "zabbix",
        "dedup_key": marker,
        "summary": f"{marker} disk C: less than 5% free",
        "severity": "high",
        "resource": "srv-db01",
    }
    return json.dumps(event).encode()


@dataclass
class Observer:
    """Times each marked ticket from send to acknowledgement."""

    run: str
    sent: dict[str, float] = field(default_factory=dict)
    """marker -> monotonic send time."""
    channel_of: dict[str, str] = field(default_factory=dict)
    ticket_of: dict[str, str] = field(default_factory=dict)
    """ticket id -> marker."""
    acked: dict[str, float] = field(default_factory=dict)
    """marker -> monotonic time the ticket's last event arrived (``end_event``)."""
    ack_counts: dict[str, int] = field(default_factory=dict)
    """ticket id -> acknowledgement events seen (a duplicate would show as 2)."""
    _early: dict[tuple[str, str], float] = field(default_factory=dict)
    _nc: Client | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, url: str) -> None:
        self._nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
        await self._nc.subscribe("opora.ev.*.ticket.*.received", cb=self._on_received)
        await self._nc.subscribe("opora.ev.*.notification.*.sent", cb=self._on_sent)
        await self._nc.subscribe("opora.ev.*.sla.*.armed", cb=self._on_armed)

    async def stop(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    def mark(self, n: int) -> str:
        return f"bench-{self.run}-{n}"

    def record_send(self, marker: str, channel: str) -> None:
        self.sent[marker] = time.perf_counter()
        self.channel_of[marker] = channel

    async def _on_received(self, msg: Msg) -> None:
        data = json.loads(msg.data)
        subject: str = data.get("subject", "")
        start = subject.find(f"bench-{self.run}-")
        if start < 0:
            return
        marker = subject[start:].split()[0]
        ticket = str(data["ticket_id"])
        self.ticket_of[ticket] = marker
        early = self._early.pop((ticket, self.end_event(marker)), None)
        if early is not None:
            self.acked.setdefault(marker, early)
            self.changed.set()

    async def _on_sent(self, msg: Msg) -> None:
        now = time.perf_counter()
        data = json.loads(msg.data)
        if data.get("trigger") != "acknowledgement":
            return
        ticket = str(data["ticket_id"])
        self.ack_counts[ticket] = self.ack_counts.get(ticket, 0) + 1
        self._done(ticket, now, "ack")

    async def _on_armed(self, msg: Msg) -> None:
        now = time.perf_counter()
        ticket = msg.subject.split(".")[4]
        self._done(ticket, now, "armed")

    def _done(self, ticket: str, now: float, what: str) -> None:
        marker = self.ticket_of.get(ticket)
        if marker is not None and self.end_event(marker) != what:
            return
        if marker is None:
            self._early[(ticket, what)] = now
            return
        self.acked.setdefault(marker, now)
        self.changed.set()

    def end_event(self, marker: str) -> str:
        """What completes this ticket: the acknowledgement, or (from a tool) armed clocks."""
        return "armed" if self.channel_of.get(marker) == "nats" else "ack"

    async def wait_all(self, markers: list[str], *, idle_timeout: float = 30.0) -> list[str]:
        """Wait until every marker is acknowledged, or nothing new arrived for ``idle_timeout``."""
        while True:
            missing = [m for m in markers if m not in self.acked]
            if not missing:
                return []
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=idle_timeout)
            except TimeoutError:
                return missing

    def latencies_ms(self, markers: list[str], channel: str | None = None) -> list[float]:
        return sorted(
            (self.acked[m] - self.sent[m]) * 1000
            for m in markers
            if m in self.acked and (channel is None or self.channel_of.get(m) == channel)
        )


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 when empty)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


class Channels:
    """Senders for the three channels, sharing connections."""

    def __init__(self, *, http: str, smtp_port: int, nats_url: str, smtp_sessions: int = 8):
        self.http_url = http
        self.smtp_port = smtp_port
        self.nats_url = nats_url
        self.smtp_sessions = smtp_sessions
        self._http: aiohttp.ClientSession | None = None
        self._nc: Client | None = None
        self._smtp: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._requesters = itertools.cycle(REQUESTERS)
        self._bodies = itertools.cycle(BODIES)
        self.errors: dict[str, int] = {}

    async def open(self) -> None:
        # aiohttp rather than httpx: the load generator shares the two cores with the stack,
        # and aiohttp spends about a third of httpx's CPU on a request
        self._http = aiohttp.ClientSession(
            base_url=self.http_url,
            connector=aiohttp.TCPConnector(limit=64),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        self._nc = await nats.connect(self.nats_url)
        for _ in range(self.smtp_sessions):
            session = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.smtp_port, timeout=60)
            await session.connect()
            await self._smtp.put(session)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
        while not self._smtp.empty():
            session = self._smtp.get_nowait()
            with contextlib.suppress(Exception):
                await session.quit()

    def sender(self, channel: str) -> Callable[[str], Awaitable[None]]:
        return {"http": self.http, "smtp": self.smtp, "nats": self.nats}[channel]

    def _failed(self, channel: str) -> None:
        self.errors[channel] = self.errors.get(channel, 0) + 1

    async def http(self, marker: str) -> None:
        assert self._http is not None
        requester, _ = next(self._requesters)
        body = web_ticket(marker, requester, next(self._bodies))
        headers = {"Idempotency-Key": marker}
        for attempt in range(3):
            try:
                async with self._http.post("/v1/tickets", json=body, headers=headers) as response:
                    status = response.status
                    await response.read()
            except aiohttp.ClientConnectionError:
                # A kept-alive connection the server closed as we reused it: send again (the
                # Idempotency-Key makes a repeat harmless), as any HTTP client would.
                if attempt == 2:
                    self._failed("http")
                continue
            if status != 202:
                self._failed("http")
            return

    async def smtp(self, marker: str) -> None:
        requester, _ = next(self._requesters)
        mail = support_mail(marker, requester, next(self._bodies))
        session = await self._smtp.get()
        try:
            await session.send_message(mail)
        except aiosmtplib.SMTPException:
            self._failed("smtp")
            with contextlib.suppress(Exception):
                session.close()
            session = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.smtp_port, timeout=60)
            await session.connect()
        finally:
            self._smtp.put_nowait(session)

    async def nats(self, marker: str) -> None:
        assert self._nc is not None
        _, tenant = next(self._requesters)
        try:
            await self._nc.jetstream().publish(
                f"opora.in.{tenant}.events",
                alert_event(marker),
                headers={"Nats-Msg-Id": marker},
            )
        except Exception:
            self._failed("nats")


async def fixed_rate(
    observer: Observer,
    channels: Channels,
    *,
    rate: float,
    seconds: float,
    mix: tuple[str, ...],
    first: int = 0,
) -> list[str]:
    """Open-loop load: one ticket every 1/rate s, round-robin over ``mix``; returns the markers.

    Each send is its own task started on schedule, so a slow answer never delays the next
    send (no coordinated omission).
    """
    total = int(rate * seconds)
    markers: list[str] = []
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        channel = mix[i % len(mix)]
        marker = observer.mark(first + i)
        observer.record_send(marker, channel)
        task = asyncio.create_task(channels.sender(channel)(marker))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        markers.append(marker)
    if tasks:
        await asyncio.gather(*tasks)
    return markers


async def saturate(
    observer: Observer,
    channels: Channels,
    *,
    count: int,
    channel: str,
    concurrency: int,
    first: int = 0,
) -> list[str]:
    """Closed-loop load: ``count`` tickets with ``concurrency`` sends in flight at once."""
    markers = [observer.mark(first + i) for i in range(count)]
    queue = iter(markers)
    send = channels.sender(channel)

    async def worker() -> None:
        for marker in queue:
            observer.record_send(marker, channel)
            await send(marker)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return markers
