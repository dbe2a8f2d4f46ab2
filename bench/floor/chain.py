"""The floor's moving parts: hop processes, the chain's stream, and the driver's two measurements.

Hops run as ``python -m bench.floor.hop_<kind>`` from the repository root, each in its own
process group and with a parent-death signal, so a crash or Ctrl-C of the driver leaves nothing
behind; ``HopProcesses.stop`` sends SIGTERM to every group, then SIGKILL after a deadline.
Readiness and drain are read from the consumers' state on the server (a hop is ready when its
durable consumer has a pull request waiting), polled with deadlines.
"""

import asyncio
import contextlib
import dataclasses
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bench.floor.common import HOPS, MSG_ID, Chain, msg_id
from opora_shared.nats.server import set_parent_death_signal
from opora_shared.nats.streams import StorePolicy, stream_configs

REPO_ROOT = Path(__file__).resolve().parents[2]
HOP_MODULES = {"faststream": "bench.floor.hop_faststream", "raw": "bench.floor.hop_raw"}
STALL_TIMEOUT_S = 30.0
"""A run fails when nothing arrives at the end of the chain for this long."""
STEADY = (0.1, 0.9)
"""Steady-state throughput is measured between these fractions of the arrivals."""


class ChainError(RuntimeError):
    """A hop died, the chain stalled, or a publish was refused."""


@dataclass
class HopProcess:
    """One running hop and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        """The end of the hop's log, for error messages."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class HopProcesses:
    """The hop processes of every chain of a measurement."""

    log_dir: Path
    hops: list[HopProcess] = field(default_factory=list)

    def start(self, chain: Chain, url: str) -> None:
        """Start the chain's ``HOPS`` hops (not waiting for them: see ``wait_ready``)."""
        for hop in range(HOPS):
            name = f"{chain.stream}-{chain.durable(hop)}"
            log = self.log_dir / f"{name}.log"
            command = [
                sys.executable,
                "-m",
                HOP_MODULES[chain.kind],
                "--url",
                url,
                "--stream",
                chain.stream,
                "--subject-in",
                chain.subject(hop),
                "--subject-out",
                chain.subject(hop + 1),
                "--durable",
                chain.durable(hop),
                "--index-out",
                str(hop + 1),
            ]
            with log.open("wb") as out:
                popen = subprocess.Popen(
                    command,
                    cwd=REPO_ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    # Own group: a terminal's Ctrl-C reaches the driver only, which then stops
                    # the hops itself; the death signal covers a driver killed outright.
                    process_group=0,
                    preexec_fn=set_parent_death_signal,
                )
            self.hops.append(HopProcess(name, popen, log))

    def check_alive(self) -> None:
        """Raise ChainError, with its log, if a hop has exited."""
        for hop in self.hops:
            if hop.popen.poll() is not None:
                msg = f"hop {hop.name} exited with {hop.popen.returncode}:\n{hop.tail()}"
                raise ChainError(msg)

    def stop(self, *, timeout: float = 5.0) -> None:
        """SIGTERM every hop's process group, then SIGKILL what is left at the deadline."""
        for hop in self.hops:
            _signal_group(hop.popen, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for hop in self.hops:
            try:
                hop.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(hop.popen, signal.SIGKILL)
                hop.popen.wait(timeout=timeout)
        self.hops.clear()


def _signal_group(popen: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signum)


async def create_stream(js: JetStreamContext, chain: Chain) -> None:
    """The chain's stream, configured as Opora's events stream (file storage, dedup window)."""
    await delete_stream(js, chain)  # a leftover of an interrupted run
    events = stream_configs(StorePolicy())[0]
    config = dataclasses.replace(
        events,
        name=chain.stream,
        description=f"bench.floor: the {chain.kind} chain",
        subjects=[chain.subjects],
    )
    await js.add_stream(config)


async def delete_stream(js: JetStreamContext, chain: Chain) -> None:
    """Delete the chain's stream (and with it its consumers), if it exists."""
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(chain.stream)


async def _poll(
    predicate: Any, *, timeout: float, hops: HopProcesses, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        hops.check_alive()
        if time.monotonic() >= deadline:
            msg = f"{what} not reached within {timeout}s"
            raise ChainError(msg)
        await asyncio.sleep(interval)


async def wait_ready(
    js: JetStreamContext, chain: Chain, hops: HopProcesses, *, timeout: float = 60.0
) -> None:
    """Wait until every hop's durable consumer exists and has a pull request waiting."""

    async def ready() -> bool:
        for hop in range(HOPS):
            try:
                info = await js.consumer_info(chain.stream, chain.durable(hop))
            except NotFoundError:
                return False
            if not info.num_waiting:
                return False
        return True

    await _poll(ready, timeout=timeout, hops=hops, what=f"{chain.kind} hops ready")


async def settle(
    js: JetStreamContext, chain: Chain, hops: HopProcesses, *, timeout: float = 30.0
) -> None:
    """Wait until every hop has acknowledged everything, then purge the stream."""

    async def drained() -> bool:
        for hop in range(HOPS):
            info = await js.consumer_info(chain.stream, chain.durable(hop))
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    await _poll(drained, timeout=timeout, hops=hops, what=f"{chain.kind} chain drained")
    await js.purge_stream(chain.stream)


class Arrivals:
    """Arrival times of the tickets of one run at the end of a chain (a core subscription)."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self.times: list[float] = []
        self.count = 0
        self.done = asyncio.Event()

    async def subscribe(self, nc: Client, chain: Chain) -> None:
        """Listen on the chain's last subject."""
        await nc.subscribe(chain.subject(HOPS), cb=self._on_message)
        await nc.flush()

    def expect(self, event_ids: list[str]) -> None:
        """Start a run: these tickets are expected, each once."""
        self._index = {msg_id(event_id, HOPS): i for i, event_id in enumerate(event_ids)}
        self.times = [0.0] * len(event_ids)
        self.count = 0
        self.done.clear()

    async def _on_message(self, msg: Msg) -> None:
        now = time.perf_counter()
        i = self._index.pop(msg.headers.get(MSG_ID, "") if msg.headers else "", None)
        if i is None:  # a redelivered duplicate, or a straggler of another run
            return
        self.times[i] = now
        self.count += 1
        if self.count == len(self.times):
            self.done.set()

    async def wait(self, hops: HopProcesses, *, stall_timeout: float = STALL_TIMEOUT_S) -> None:
        """Wait for every expected ticket; fail if a hop dies or nothing arrives for a while."""
        last_count, last_progress = self.count, time.monotonic()
        while not self.done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), 0.5)
            hops.check_alive()
            if self.count != last_count:
                last_count, last_progress = self.count, time.monotonic()
            elif time.monotonic() - last_progress > stall_timeout:
                msg = f"chain stalled: {self.count}/{len(self.times)} arrived"
                raise ChainError(msg)


async def _publish(
    js: JetStreamContext, chain: Chain, event_id: str, body: bytes
) -> asyncio.Future[Any]:
    return await js.publish_async(chain.subject(0), body, headers={MSG_ID: msg_id(event_id, 0)})


def _check_acks(acks: list[asyncio.Future[Any]]) -> None:
    failed = [a for a in acks if not a.done() or a.cancelled() or a.exception() is not None]
    if failed:
        msg = f"{len(failed)} of {len(acks)} driver publishes were not acknowledged"
        raise ChainError(msg)


async def throughput_run(
    js: JetStreamContext,
    chain: Chain,
    arrivals: Arrivals,
    hops: HopProcesses,
    items: list[tuple[str, bytes]],
) -> dict[str, float]:
    """Publish every item as fast as the window allows; time first publish to last arrival."""
    arrivals.expect([event_id for event_id, _ in items])
    acks = []
    start = time.perf_counter()
    for event_id, body in items:
        acks.append(await _publish(js, chain, event_id, body))
    await asyncio.wait_for(js.publish_async_completed(), STALL_TIMEOUT_S)
    published = time.perf_counter()
    await arrivals.wait(hops)
    _check_acks(acks)
    times = sorted(arrivals.times)
    n = len(times)
    first, last = int(n * STEADY[0]), int(n * STEADY[1]) - 1
    steady_s = times[last] - times[first]
    return {
        "messages": n,
        "seconds": round(times[-1] - start, 4),
        "per_s": round(n / (times[-1] - start), 1),
        "steady_per_s": round((last - first) / steady_s, 1) if steady_s > 0 else 0.0,
        "driver_publish_per_s": round(n / (published - start), 1),
    }


async def latency_run(
    js: JetStreamContext,
    chain: Chain,
    arrivals: Arrivals,
    hops: HopProcesses,
    items: list[tuple[str, bytes]],
    *,
    rate: float,
) -> dict[str, float]:
    """Publish at a fixed rate; latency is the driver's send to the arrival at the end."""
    arrivals.expect([event_id for event_id, _ in items])
    sent = [0.0] * len(items)
    acks = []
    start = time.perf_counter()
    for i, (event_id, body) in enumerate(items):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[i] = time.perf_counter()
        acks.append(await _publish(js, chain, event_id, body))
    await arrivals.wait(hops)
    _check_acks(acks)
    latencies = [(a - s) * 1000 for a, s in zip(arrivals.times, sent, strict=True)]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "messages": len(items),
        "rate_per_s": round(len(items) / (sent[-1] - sent[0]), 1) if len(items) > 1 else 0.0,
        "p50_ms": round(cuts[49], 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(max(latencies), 2),
    }
