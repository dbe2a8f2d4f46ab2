"""Chaos: kill -9 each service, then nats-server, under steady load; count what was lost or doubled.

A fresh stack (``bench/stack.py``, with ``STACK_ENV``: a two-second ack wait and a five-second
scan of held notifications, so that what a dead process held is taken up again within seconds)
takes steady load through the three channels in turn: HTTP, SMTP
and the NATS integrator subject. While the load runs, each service in turn (intake, classifier,
sla-timer, notifier) and then nats-server itself is killed with SIGKILL, left down for a moment
and restarted; the harness waits, with a deadline, until it is back:

- a service: a new NATS connection under its name (``opora-<service>``) and every one of its
  durable consumers served again (a pull request waiting on it, or a delivery since the
  restart: a dead process's pull requests go with its connection); the intake also answers
  ``/readyz``;
- nats-server: its JetStream health check, then all four services as above.

The load generator behaves as a real client or MTA: a send that fails (connection refused, 5xx,
SMTP 4xx, a NATS publish timeout) is repeated with the same idempotency key (HTTP
``Idempotency-Key``, the mail's ``Message-ID``, ``Nats-Msg-Id`` and the alert's
``dedup_key``) until it is accepted or its deadline passes. Only accepted tickets count as sent.

Once the load is over and the pipeline is quiet (no durable consumer has anything pending or
unacknowledged, the notifier holds no trigger due soon, and the events stream stopped growing;
a backlog is waited for as long as it shrinks), everything is counted from the
``OPORA_EVENTS`` stream (core subscriptions miss what happens while NATS is down) and from the
outbox, per accepted ticket:

- lost: no ``ticket.received``, no ``ticket.classified``, no ``sla.armed``, and, for a ticket
  with a client to write to (not the integration channel), no acknowledgement
  (``notification.sent``, trigger ``acknowledgement``) or no acknowledgement ``.eml``;
- duplicated: more than one ticket for one marker, more than one classification, SLA arming or
  assignment, the same notification (ticket, trigger, recipient) sent twice, the same SLA event
  twice, or a second ``.eml`` for the same (ticket, trigger, recipient).

Dead letters (``OPORA_DLQ``) are counted apart, with their reasons. Prints a summary and, last,
one JSON line; exits 1 when anything was lost or duplicated.

    .venv/bin/python bench/chaos.py [--rate 50] [--quick|--long] [--keep]
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import (
    BODIES,
    CHANNELS,
    REQUESTERS,
    alert_event,
    percentile,
    support_mail,
    web_ticket,
)
from bench.stack import BenchStack, launch
from opora_shared import subjects
from opora_shared.stack import SERVICES
from opora_shared.tasks import stop_task

NATS_SERVER = "nats-server"
TARGETS = (*SERVICES, NATS_SERVER)
"""What is killed, in this order, in each cycle."""

CONSUMERS: dict[str, tuple[tuple[str, str], ...]] = {
    "intake": (
        (subjects.EVENTS_STREAM, "ticket-index"),
        (subjects.INBOUND_STREAM, "intake-integrations"),
    ),
    "classifier": tuple(
        (subjects.EVENTS_STREAM, name)
        for name in ("classifier", "router", "router-updates", "router-assignments")
    ),
    "sla-timer": (
        (subjects.EVENTS_STREAM, "sla-timer-tickets"),
        (subjects.SLA_STREAM, "sla-timer-fire"),
    ),
    "notifier": tuple(
        (subjects.EVENTS_STREAM, f"notifier-{name}")
        for name in ("ack", "unknown", "sla-warning", "sla-breached", "escalated", "updates")
    ),
}
"""Each service's durable consumers: when each is served again, the service is back at work."""

CONSUMER_STREAMS = (subjects.EVENTS_STREAM, subjects.INBOUND_STREAM, subjects.SLA_STREAM)
MARKER = re.compile(r"bench-[0-9a-f]+-\d+")
ACK = "acknowledgement"
EXAMPLES = 10
"""How many lost or duplicated markers the details list (with their tickets)."""
STACK_ENV = {"OPORA_ACK_WAIT_S": "2", "OPORA_HOLD_SCAN_S": "5"}
"""Recovery within seconds: what a killed process held is redelivered after 2 s (not 30), and
the notifier looks at held notifications every 5 s (not 30). Everything else is the default."""
HOLD_HORIZON_S = 120.0
"""Held notifications due sooner than this count as work still to do."""


@dataclass(frozen=True)
class Mode:
    """How long the load runs around the kills, and how often the cycle repeats."""

    cycles: int
    warmup_s: float
    """Steady load before the first kill."""
    settle_s: float
    """Steady load after a target is back, before the next kill."""
    down_s: float
    """How long a killed target stays down before it is restarted."""
    quiet_limit_s: float
    """The longest wait for the pipeline to work off its backlog after the load."""


MODES = {
    "quick": Mode(cycles=1, warmup_s=3.0, settle_s=3.0, down_s=1.5, quiet_limit_s=90.0),
    "long": Mode(cycles=4, warmup_s=10.0, settle_s=10.0, down_s=2.0, quiet_limit_s=600.0),
}


# --- the clients: retry with the same idempotency key until accepted -------------------------

ACCEPTED, RETRY, REFUSED = "accepted", "retry", "refused"


class ClientSenders:
    """The three channels as patient clients: a failed send is repeated, never given a new key."""

    def __init__(
        self,
        *,
        http: str,
        smtp_port: int,
        nats_url: str,
        give_up_s: float = 90.0,
        smtp_sessions: int = 8,
    ) -> None:
        self.http_url = http
        self.smtp_port = smtp_port
        self.nats_url = nats_url
        self.give_up_s = give_up_s
        self.smtp_sessions = smtp_sessions
        self.accepted: dict[str, str] = {}
        """marker -> channel, for every send finally accepted."""
        self.first_try: dict[str, float] = {}
        """marker -> wall-clock time of the first attempt (to compare with stream timestamps)."""
        self.gave_up: dict[str, str] = {}
        """marker -> the last error, for sends refused or never accepted before the deadline."""
        self.retries: Counter[str] = Counter()
        """channel -> repeated attempts."""
        self.errors: Counter[str] = Counter()
        """``channel: error`` -> how often an attempt failed that way."""
        self._http: httpx.AsyncClient | None = None
        self._nc: Client | None = None
        self._smtp: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._requesters = itertools.cycle(REQUESTERS)
        self._bodies = itertools.cycle(BODIES)

    async def open(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        timeout = httpx.Timeout(10.0, connect=2.0, pool=10.0)
        self._http = httpx.AsyncClient(base_url=self.http_url, limits=limits, timeout=timeout)
        self._nc = await connect(self.nats_url)
        for _ in range(self.smtp_sessions):
            self._smtp.put_nowait(self._new_session())

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        while not self._smtp.empty():
            session = self._smtp.get_nowait()
            if session.is_connected:
                with contextlib.suppress(Exception):
                    await session.quit()

    async def send(self, marker: str, channel: str) -> None:
        """Send one ticket through ``channel``; repeat it with the same key until accepted."""
        self.first_try[marker] = time.time()
        attempt = self._attempt(marker, channel)
        deadline = time.monotonic() + self.give_up_s
        pause = 0.1
        while True:
            outcome, error = await attempt()
            if outcome == ACCEPTED:
                self.accepted[marker] = channel
                return
            self.errors[f"{channel}: {error}"] += 1
            if outcome == REFUSED or time.monotonic() + pause > deadline:
                self.gave_up[marker] = f"{channel}: {error}"
                return
            self.retries[channel] += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _attempt(self, marker: str, channel: str) -> Callable[[], Awaitable[tuple[str, str]]]:
        """One attempt at sending this ticket, the same every time it is repeated."""
        requester, tenant = next(self._requesters)
        body = next(self._bodies)
        if channel == "http":
            ticket = web_ticket(marker, requester, body)
            return lambda: self._http_once(marker, ticket)
        if channel == "smtp":
            mail = support_mail(marker, requester, body)
            return lambda: self._smtp_once(mail)
        payload = alert_event(marker)
        return lambda: self._nats_once(marker, tenant, payload)

    async def _http_once(self, marker: str, ticket: dict[str, str]) -> tuple[str, str]:
        assert self._http is not None
        try:
            response = await self._http.post(
                "/v1/tickets", json=ticket, headers={"Idempotency-Key": marker}
            )
        except httpx.TransportError as exc:
            return RETRY, type(exc).__name__
        if response.status_code == 202:
            return ACCEPTED, ""
        retry = response.status_code == 429 or response.status_code >= 500
        return (RETRY if retry else REFUSED), f"HTTP {response.status_code}"

    def _new_session(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(hostname="127.0.0.1", port=self.smtp_port, timeout=10)

    def _discard(self, session: aiosmtplib.SMTP) -> aiosmtplib.SMTP:
        with contextlib.suppress(Exception):
            session.close()
        return self._new_session()

    async def _smtp_once(self, mail: EmailMessage) -> tuple[str, str]:
        session = await self._smtp.get()
        try:
            if not session.is_connected:
                await session.connect()
            await session.send_message(mail)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            session = self._discard(session)
            codes = [r.code for r in exc.recipients]
            temporary = all(400 <= code < 500 for code in codes)
            return (RETRY if temporary else REFUSED), f"SMTP {codes}"
        except aiosmtplib.SMTPResponseException as exc:
            session = self._discard(session)
            return (RETRY if 400 <= exc.code < 500 else REFUSED), f"SMTP {exc.code}"
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            session = self._discard(session)
            return RETRY, type(exc).__name__
        finally:
            self._smtp.put_nowait(session)
        return ACCEPTED, ""

    async def _nats_once(self, marker: str, tenant: str, payload: bytes) -> tuple[str, str]:
        assert self._nc is not None
        try:
            await self._nc.jetstream().publish(
                subjects.integrator_events(tenant),
                payload,
                timeout=2.0,
                headers={"Nats-Msg-Id": marker},
            )
        except Exception as exc:  # any failure: an integrator publishes again
            return RETRY, type(exc).__name__
        return ACCEPTED, ""


async def connect(url: str) -> Client:
    """A NATS connection that outlives a nats-server restart (reconnects for ever, quietly)."""

    async def quiet(*_: object) -> None:
        return None

    return await nats.connect(
        url,
        connect_timeout=2,
        reconnect_time_wait=0.2,
        max_reconnect_attempts=-1,
        error_cb=quiet,
        disconnected_cb=quiet,
        reconnected_cb=quiet,
    )


async def steady_load(
    senders: ClientSenders, *, run: str, rate: float, stop: asyncio.Event
) -> list[str]:
    """Open loop: one ticket every 1/rate s, channels in turn, until ``stop``; returns markers.

    Each send is its own task started on schedule, so a send stuck in retries never delays the
    next one; returns once every send was accepted or gave up.
    """
    tasks: set[asyncio.Task[None]] = set()
    markers: list[str] = []
    start = time.perf_counter()
    for i in itertools.count():
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if stop.is_set():
            break
        marker = f"bench-{run}-{i}"
        task = asyncio.create_task(senders.send(marker, CHANNELS[i % len(CHANNELS)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        markers.append(marker)
    if tasks:
        await asyncio.gather(*tasks)
    return markers


# --- watching the stack: is it back, is it quiet -------------------------------------------


class Probe:
    """Reads the stack's state: NATS connections, consumers, the intake's readiness."""

    def __init__(self, bench: BenchStack) -> None:
        self.bench = bench
        self._nc: Client | None = None
        self._http = httpx.AsyncClient(timeout=2.0)

    async def open(self) -> None:
        self._nc = await connect(self.bench.nats.url)

    async def close(self) -> None:
        await self._http.aclose()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    @property
    def js(self) -> JetStreamContext:
        assert self._nc is not None
        return self._nc.jetstream(timeout=2.0)

    async def connections(self) -> dict[str, set[int]]:
        """Client name -> connection ids, from nats-server's monitoring endpoint."""
        try:
            response = await self._http.get(f"{self.bench.nats.monitor_url}/connz?limit=4096")
            found: dict[str, set[int]] = defaultdict(set)
            for conn in response.json().get("connections", []):
                found[conn.get("name") or ""].add(conn["cid"])
            return found
        except (httpx.HTTPError, ValueError):
            return {}

    async def intake_ready(self) -> bool:
        try:
            response = await self._http.get(f"{self.bench.http}/readyz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def pulling(self, stream: str, durable: str) -> tuple[int, int] | None:
        """(pull requests waiting, deliveries so far) of a consumer; None when NATS cannot tell."""
        try:
            info = await self.js.consumer_info(stream, durable)
        except Exception:  # NATS down or reconnecting: not back yet
            return None
        return info.num_waiting or 0, info.delivered.consumer_seq or 0

    async def busy_consumers(self) -> dict[str, tuple[int, int]]:
        """Durable consumers with messages pending or unacknowledged: name -> (pending, acks)."""
        busy: dict[str, tuple[int, int]] = {}
        for stream in CONSUMER_STREAMS:
            for info in await self.js.consumers_info(stream):
                if not info.config.durable_name:
                    continue
                pending, unacked = info.num_pending or 0, info.num_ack_pending or 0
                if pending or unacked:
                    busy[info.name] = (pending, unacked)
        return busy

    async def holds(self) -> list[datetime]:
        """When the notifier's held triggers are due (``hold.*`` in its bucket): notices that wait.

        A trigger whose notices must wait (another attempt's lease, quiet hours, a rate limit)
        is acknowledged and kept in KV; a background scan replays it when due. It is work the
        consumers' counts do not show.
        """
        kv = await self.js.key_value(subjects.NOTIFY_BUCKET)
        watcher = await kv.watch("hold.>", ignore_deletes=True)
        due: list[datetime] = []
        try:
            while (entry := await watcher.updates(timeout=5.0)) is not None:
                if entry.value and entry.operation not in (KV_DEL, KV_PURGE):
                    due.append(datetime.fromisoformat(json.loads(entry.value)["due"]))
        finally:
            await watcher.stop()
        return due


async def wait_back(
    probe: Probe,
    services: tuple[str, ...],
    *,
    old_connections: dict[str, set[int]],
    timeout: float,
) -> None:
    """Poll until every service in ``services`` is connected anew and pulling on its consumers."""
    deadline = time.monotonic() + timeout
    needed = [c for name in services for c in CONSUMERS[name]]
    # A consumer is served again when a pull request waits on it or it delivered something
    # since now: a dead process's pull requests are dropped with its connection.
    baseline: dict[tuple[str, str], int] = {}
    pulled: set[tuple[str, str]] = set()
    while True:
        if dead := [name for name in services if not probe.bench.stack.services[name].running]:
            msg = f"{', '.join(dead)} exited while coming back (see {probe.bench.root}/logs)"
            raise RuntimeError(msg)
        connections = await probe.connections()
        unconnected = [
            name
            for name in services
            if not connections.get(f"opora-{name}", set())
            - old_connections.get(f"opora-{name}", set())
        ]
        for consumer in needed:
            if consumer in pulled or (state := await probe.pulling(*consumer)) is None:
                continue
            waiting, delivered = state
            if waiting > 0 or delivered > baseline.setdefault(consumer, delivered):
                pulled.add(consumer)
        idle = [f"{stream}/{name}" for stream, name in needed if (stream, name) not in pulled]
        unready = "intake" in services and not await probe.intake_ready()
        if not unconnected and not idle and not unready:
            return
        if time.monotonic() > deadline:
            msg = (
                f"not back within {timeout:.0f}s: unconnected {unconnected}, "
                f"no pull on {idle}, intake ready: {not unready}"
            )
            raise TimeoutError(msg)
        await asyncio.sleep(0.1)


async def kill_and_restore(
    bench: BenchStack, probe: Probe, target: str, *, down_s: float, timeout: float
) -> dict[str, Any]:
    """kill -9 one target, leave it down ``down_s``, restart it and wait until it is back."""
    services = tuple(SERVICES) if target == NATS_SERVER else (target,)
    before = {} if target == NATS_SERVER else await probe.connections()
    killed = time.monotonic()
    if target == NATS_SERVER:
        bench.nats.kill()
    else:
        bench.stack.services[target].kill9()
    await asyncio.sleep(down_s)  # the deliberate outage
    restarted = time.monotonic()
    if target == NATS_SERVER:
        # Blocks the loop until JetStream is healthy (under a second): the load catches up with
        # its schedule afterwards, and nothing can be accepted meanwhile anyway. Started from
        # this thread, not a worker: the server dies with the thread that started it.
        bench.nats.start(timeout=timeout)
    else:
        bench.stack.services[target].start()
    await wait_back(probe, services, old_connections=before, timeout=timeout)
    back = time.monotonic()
    return {
        "target": target,
        "down_s": round(restarted - killed, 2),
        "back_s": round(back - restarted, 2),
        "outage_s": round(back - killed, 2),
    }


async def wait_quiet(
    probe: Probe, *, stall_s: float, limit_s: float, settle_s: float = 2.0
) -> dict[str, Any]:
    """Poll until nothing is pending anywhere and the events stream stopped growing.

    Pending: messages a durable consumer has not delivered or not had acknowledged, and the
    notifier's held triggers due within ``HOLD_HORIZON_S`` (later ones wait on purpose).

    A backlog that shrinks is waited for; gives up when nothing moved for ``stall_s``, or
    after ``limit_s`` in all.
    """
    start = time.monotonic()
    last: tuple[int, int] | None = None
    changed = start
    while True:
        try:
            busy = await probe.busy_consumers()
            horizon = datetime.now(UTC) + timedelta(seconds=HOLD_HORIZON_S)
            if soon := [due for due in await probe.holds() if due <= horizon]:
                busy["notifier holds"] = (len(soon), 0)
            seq = (await probe.js.stream_info(subjects.EVENTS_STREAM)).state.last_seq
            state = (sum(p + a for p, a in busy.values()), seq)
        except Exception:  # NATS reconnecting: not quiet yet
            busy, state = {"?": (0, 0)}, (-1, -1)
        now = time.monotonic()
        if state != last:
            last, changed = state, now
        elif not busy and now - changed >= settle_s:
            return {"quiet": True, "quiet_after_s": round(changed - start, 1)}
        if now - changed > stall_s or now - start > limit_s:
            return {
                "quiet": False,
                "waited_s": round(now - start, 1),
                "busy": {k: list(v) for k, v in busy.items()},
            }
        await asyncio.sleep(0.5)


# --- counting, from the streams and the outbox -------------------------------------------


async def read_stream(
    js: JetStreamContext, stream: str, subject: str
) -> AsyncIterator[tuple[str, dict[str, Any], datetime]]:
    """Every message a stream holds, oldest first: (subject, JSON payload, stored at)."""
    state = (await js.stream_info(stream)).state
    if not state.messages:
        return
    sub = await js.subscribe(subject, ordered_consumer=True)
    try:
        while True:
            msg = await sub.next_msg(timeout=10)
            yield msg.subject, json.loads(msg.data), msg.metadata.timestamp
            if msg.metadata.sequence.stream >= state.last_seq:
                return
    finally:
        await sub.unsubscribe()


@dataclass
class StreamTally:
    """What the events stream says happened to each ticket."""

    tickets_of: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """marker -> ticket ids created for it."""
    channel_of: dict[str, str] = field(default_factory=dict)
    classified: Counter[str] = field(default_factory=Counter)
    armed: Counter[str] = field(default_factory=Counter)
    assigned: Counter[str] = field(default_factory=Counter)
    sla: Counter[tuple[str, ...]] = field(default_factory=Counter)
    """(ticket, event, target, level) of warnings, breaches, escalations."""
    notifications: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(ticket, trigger, recipient) of notification.sent."""
    acks: Counter[str] = field(default_factory=Counter)
    first_ack_at: dict[str, datetime] = field(default_factory=dict)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)


async def tally_events(js: JetStreamContext) -> StreamTally:
    """One pass over OPORA_EVENTS."""
    tally = StreamTally()
    async for subject, data, stored_at in read_stream(
        js, subjects.EVENTS_STREAM, f"{subjects.EVENTS_PREFIX}.>"
    ):
        *_, family, ticket, name = subject.split(".")
        tally.by_type[f"{family}.{name}"] += 1
        match f"{family}.{name}":
            case "ticket.received":
                if found := MARKER.search(str(data.get("subject", ""))):
                    tally.tickets_of[found.group()].add(ticket)
                tally.channel_of[ticket] = str(data.get("channel"))
            case "ticket.classified":
                tally.classified[ticket] += 1
            case "ticket.assigned":
                tally.assigned[ticket] += 1
            case "sla.armed":
                tally.armed[ticket] += 1
            case "sla.warning" | "sla.breached" | "sla.escalated":
                key = (ticket, name, str(data.get("target")), str(data.get("level", "")))
                tally.sla[key] += 1
            case "notification.sent":
                trigger = str(data.get("trigger"))
                tally.notifications[(ticket, trigger, str(data.get("recipient")))] += 1
                if trigger == ACK:
                    tally.acks[ticket] += 1
                    tally.first_ack_at.setdefault(ticket, stored_at)
            case "notification.failed":
                tally.failed[(ticket, str(data.get("trigger")))] += 1
    return tally


@dataclass
class OutboxTally:
    """The .eml files: client mail in ``outbox/``, the team's in ``outbox/team/``."""

    client: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(ticket, trigger, recipient) -> files."""
    team: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    client_acks: Counter[str] = field(default_factory=Counter)
    partial: int = 0
    """Temporary files a killed notifier left behind (never renamed into place)."""


def tally_outbox(outbox: Path) -> OutboxTally:
    """Read the headers (ticket, trigger, recipient) of every .eml."""
    tally = OutboxTally()
    parser = BytesHeaderParser()
    for folder, counter in ((outbox, tally.client), (outbox / "team", tally.team)):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if not path.is_file():
                continue
            if path.suffix != ".eml":
                tally.partial += 1
                continue
            with path.open("rb") as handle:
                headers = parser.parse(handle)
            ticket = str(headers.get("X-Opora-Ticket", path.name.split("-", 1)[0]))
            trigger = str(headers.get("X-Opora-Trigger", ""))
            to = ",".join(sorted(a for _, a in getaddresses([str(headers.get("To", ""))])))
            counter[(ticket, trigger, to)] += 1
            if counter is tally.client and trigger == ACK:
                tally.client_acks[ticket] += 1
    return tally


async def dead_letters(js: JetStreamContext) -> list[dict[str, Any]]:
    """Every dead letter, without its payload."""
    keep = ("consumer", "subject", "num_delivered", "error_type", "reason")
    return [
        {k: data.get(k) for k in keep}
        async for _, data, _ in read_stream(js, subjects.DLQ_STREAM, f"{subjects.DLQ_PREFIX}.>")
    ]


def verdict(
    accepted: dict[str, str], events: StreamTally, outbox: OutboxTally
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per accepted marker: which outcomes are missing (lost) and which happened twice."""
    lost: dict[str, list[str]] = defaultdict(list)
    doubled: dict[str, list[str]] = defaultdict(list)
    notified = _per_ticket(events.notifications)
    mailed = _per_ticket(outbox.client) | _per_ticket(outbox.team)
    sla = _per_ticket(events.sla)
    for marker in accepted:
        tickets = events.tickets_of.get(marker, set())
        if not tickets:
            lost["ticket.received"].append(marker)
        if len(tickets) > 1:
            doubled["ticket.received"].append(marker)
        for ticket in tickets:
            client = events.channel_of.get(ticket) != "integration"
            checks = {
                "ticket.classified": events.classified[ticket],
                "sla.armed": events.armed[ticket],
                "acknowledgement": events.acks[ticket] if client else None,
                "acknowledgement.eml": outbox.client_acks[ticket] if client else None,
            }
            for kind, n in checks.items():
                if n == 0:
                    lost[kind].append(marker)
                elif n is not None and n > 1:
                    doubled[kind].append(marker)
            if events.assigned[ticket] > 1:
                doubled["ticket.assigned"].append(marker)
            if not client and events.acks[ticket]:
                doubled["acknowledgement to an integration"].append(marker)
            for kind, counts in (("notification", notified), ("mail", mailed), ("sla", sla)):
                if any(n > 1 for n in counts.get(ticket, ())):
                    doubled[kind].append(marker)
    return dict(lost), dict(doubled)


def _per_ticket(counter: Counter[Any]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    for key, n in counter.items():
        found[key[0]].append(n)
    return found


async def count(
    bench: BenchStack,
    probe: Probe,
    senders: ClientSenders,
    *,
    started_at: float,
    kills: list[dict[str, Any]],
) -> dict[str, Any]:
    """The figures: sent, lost, duplicated, dead letters, with details."""
    events = await tally_events(probe.js)
    outbox = tally_outbox(bench.var / "outbox")
    letters = await dead_letters(probe.js)
    holds = await probe.holds()
    lost, doubled = verdict(senders.accepted, events, outbox)
    lost_markers = {m for ms in lost.values() for m in ms}
    doubled_markers = {m for ms in doubled.values() for m in ms}

    def example(marker: str) -> dict[str, Any]:
        tickets = sorted(events.tickets_of.get(marker, ()))
        offset = senders.first_try[marker] - started_at
        before = [k["target"] for k in kills if k["at_s"] <= offset]
        return {
            "marker": marker,
            "channel": senders.accepted[marker],
            "tickets": tickets,
            "sent_at_s": round(offset, 2),
            "after_kill_of": before[-1] if before else None,
            "classified": [events.classified[t] for t in tickets],
            "armed": [events.armed[t] for t in tickets],
            "acks": [events.acks[t] for t in tickets],
            "ack_files": [outbox.client_acks[t] for t in tickets],
            "failed_notifications": sorted(
                f"{t}: {trigger} x{n}" for (t, trigger), n in events.failed.items() if t in tickets
            ),
        }

    latencies = sorted(
        (events.first_ack_at[t].timestamp() - senders.first_try[m]) * 1000
        for m in senders.accepted
        for t in events.tickets_of.get(m, ())
        if t in events.first_ack_at
    )
    tickets = {t for m in senders.accepted for t in events.tickets_of.get(m, ())}
    by_error = Counter(f"{d['consumer']}: {d['error_type']}" for d in letters)
    return {
        "chaos_sent": len(senders.accepted),
        "chaos_lost": len(lost_markers),
        "chaos_duplicates": len(doubled_markers),
        "chaos_dead_letters": len(letters),
        "details": {
            "sent_by_channel": dict(Counter(senders.accepted.values())),
            "gave_up": len(senders.gave_up),
            "gave_up_examples": dict(itertools.islice(senders.gave_up.items(), EXAMPLES)),
            "retries": dict(senders.retries),
            "send_errors": dict(senders.errors.most_common(20)),
            "tickets": len(tickets),
            "classified": sum(1 for t in tickets if events.classified[t]),
            "sla_armed": sum(1 for t in tickets if events.armed[t]),
            "acknowledged": sum(1 for t in tickets if events.acks[t]),
            "acknowledgement_files": sum(1 for t in tickets if outbox.client_acks[t]),
            "expecting_acknowledgement": sum(
                1 for t in tickets if events.channel_of.get(t) != "integration"
            ),
            "lost": {kind: len(ms) for kind, ms in lost.items()},
            "duplicated": {kind: len(ms) for kind, ms in doubled.items()},
            "lost_examples": [example(m) for m in sorted(lost_markers)[:EXAMPLES]],
            "duplicate_examples": [example(m) for m in sorted(doubled_markers)[:EXAMPLES]],
            "events": dict(events.by_type),
            "notifications_failed": sum(events.failed.values()),
            "outbox_files": sum(outbox.client.values()) + sum(outbox.team.values()),
            "outbox_partial_files": outbox.partial,
            "notifier_holds_left": len(holds),
            "dead_letters_by_error": dict(by_error),
            "dead_letter_examples": letters[:EXAMPLES],
            "ack_latency_ms": {
                "n": len(latencies),
                "p50": round(percentile(latencies, 50), 1),
                "p99": round(percentile(latencies, 99), 1),
                "max": round(latencies[-1], 1) if latencies else 0.0,
            },
        },
    }


# --- the run ------------------------------------------------------------------------------


async def chaos(
    bench: BenchStack,
    *,
    rate: float = 50.0,
    cycles: int = 1,
    warmup_s: float = 5.0,
    settle_s: float = 4.0,
    down_s: float = 1.5,
    targets: tuple[str, ...] = TARGETS,
    back_timeout_s: float = 60.0,
    quiet_stall_s: float = 60.0,
    quiet_limit_s: float = 120.0,
    give_up_s: float = 90.0,
) -> dict[str, Any]:
    """Steady load while each target in turn is killed and restarted; then count from the stream."""
    probe = Probe(bench)
    await probe.open()
    senders = ClientSenders(
        http=bench.http, smtp_port=bench.smtp_port, nats_url=bench.nats.url, give_up_s=give_up_s
    )
    try:
        await wait_back(probe, tuple(SERVICES), old_connections={}, timeout=back_timeout_s)
        await senders.open()
        stop = asyncio.Event()
        started_at = time.time()
        load = asyncio.create_task(
            steady_load(senders, run=uuid.uuid4().hex[:8], rate=rate, stop=stop)
        )
        kills: list[dict[str, Any]] = []
        try:
            await asyncio.sleep(warmup_s)  # steady load before the first kill
            for cycle in range(cycles):
                for target in targets:
                    at = time.time() - started_at
                    record = await kill_and_restore(
                        bench, probe, target, down_s=down_s, timeout=back_timeout_s
                    )
                    kills.append({"cycle": cycle, "at_s": round(at, 2), **record})
                    await asyncio.sleep(settle_s)  # steady load between kills
        except BaseException:
            # Something did not come back: no point retrying sends into it. The load publishes
            # to NATS, whose flush can swallow one cancel; stop_task cancels until it ends.
            await stop_task(load)
            raise
        stop.set()
        markers = await load
        load_s = time.time() - started_at
        quiet = await wait_quiet(probe, stall_s=quiet_stall_s, limit_s=quiet_limit_s)
        result = await count(bench, probe, senders, started_at=started_at, kills=kills)
        result["kills"] = kills
        result["details"].update(
            rate=rate, load_s=round(load_s, 1), attempted=len(markers), **quiet
        )
        return result
    finally:
        await senders.close()
        await probe.close()


def print_summary(result: dict[str, Any]) -> None:
    d = result["details"]
    channels = ", ".join(f"{c} {n}" for c, n in sorted(d["sent_by_channel"].items()))
    print(
        f"\nchaos at {d['rate']:g}/s for {d['load_s']} s: {result['chaos_sent']} of "
        f"{d['attempted']} tickets accepted ({channels}); gave up on {d['gave_up']}; "
        f"retries {d['retries']}"
    )
    for kill in result["kills"]:
        print(
            f"  kill -9 {kill['target']:12} at {kill['at_s']:6.1f} s: down {kill['down_s']} s, "
            f"back {kill['back_s']} s after restart (outage {kill['outage_s']} s)"
        )
    quiet = (
        f"quiet after {d['quiet_after_s']} s"
        if d["quiet"]
        else f"NOT quiet after {d['waited_s']} s: {d['busy']}"
    )
    print(
        f"stream ({quiet}): {d['tickets']} tickets, {d['classified']} classified, "
        f"{d['sla_armed']} SLA armed, {d['acknowledged']}/{d['expecting_acknowledgement']} "
        f"acknowledged, {d['acknowledgement_files']} acknowledgement .eml"
    )
    lat = d["ack_latency_ms"]
    print(f"acknowledgement latency: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']}")
    print(
        f"lost {result['chaos_lost']} {d['lost']}, duplicates {result['chaos_duplicates']} "
        f"{d['duplicated']}, dead letters {result['chaos_dead_letters']} "
        f"{d['dead_letters_by_error']}, notifier holds left {d['notifier_holds_left']}"
    )
    for name in ("lost_examples", "duplicate_examples", "dead_letter_examples"):
        for row in d[name]:
            print(f"  {name.split('_')[0]}: {row}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="tickets per second")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_const", dest="mode", const="quick")
    group.add_argument("--long", action="store_const", dest="mode", const="long")
    parser.add_argument("--down", type=float, help="seconds each target stays down")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs)")
    args = parser.parse_args()
    mode = MODES[args.mode or "quick"]
    root = Path(tempfile.mkdtemp(prefix="opora-bench-chaos-"))
    bench = launch(root, **STACK_ENV)
    try:
        result = asyncio.run(
            chaos(
                bench,
                rate=args.rate,
                cycles=mode.cycles,
                warmup_s=mode.warmup_s,
                settle_s=mode.settle_s,
                down_s=args.down if args.down is not None else mode.down_s,
                quiet_limit_s=mode.quiet_limit_s,
            )
        )
    finally:
        bench.stop()
        if args.keep:
            print(f"kept {root} (logs in {root / 'logs'})")
        else:
            bench.remove()
    result["details"]["mode"] = args.mode or "quick"
    print_summary(result)
    print(json.dumps(result, ensure_ascii=False))
    if result["chaos_lost"] or result["chaos_duplicates"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
