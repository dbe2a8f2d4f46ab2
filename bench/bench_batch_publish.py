"""Group commit with fsync on every write: single acked publishes against NATS atomic batches.

On a fresh nats-server with ``sync_interval: always`` and then with the server's default: 2,000
ticket-sized messages published as single acked publishes (all in flight at once), then as
atomic batches (ADR-50: ``Nats-Batch-Id``/``-Sequence``/``-Commit`` headers, ``allow_atomic``
on the stream) of 10 and of 50, one after another; then the shape one ticket's own writes would
have (the four SLA schedules of a ticket): 500 batches of 4 with 4 in flight, against the same
2,000 messages as single acked publishes, 4 in flight. A batch is stored and fsynced as one
write, so it shows what batching a service's writes would buy under Opora's durability setting.

    .venv/bin/python bench/bench_batch_publish.py
"""

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import SYNC_MODES, start_server

MESSAGES = 2000
PAYLOAD = b"x" * 1900


async def measure(url: str) -> dict[str, float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BATCH", subjects=["batch.>"], allow_atomic=True))
    out = {}
    start = time.perf_counter()
    await asyncio.gather(*(js.publish(f"batch.single.{i}", PAYLOAD) for i in range(MESSAGES)))
    out["single_concurrent_per_s"] = round(MESSAGES / (time.perf_counter() - start))
    for size in (10, 50):
        start = time.perf_counter()
        for b in range(MESSAGES // size):
            await _atomic_batch(nc, f"b{size}-{b}", [f"batch.{size}.{b}.{i}" for i in range(size)])
        out[f"atomic_batch_{size}_per_s"] = round(MESSAGES / (time.perf_counter() - start))
    out["single_4_in_flight_per_s"] = await _small(js, nc, atomic=False)
    out["atomic_batch_4_with_4_in_flight_per_s"] = await _small(js, nc, atomic=True)
    stored = (await js.stream_info("BATCH")).state.messages
    if stored != MESSAGES * 5:
        msg = f"stored {stored} of {MESSAGES * 5}"
        raise RuntimeError(msg)
    await nc.close()
    return out


async def _atomic_batch(nc: Client, batch_id: str, subjects: list[str]) -> None:
    """PAYLOAD on each of ``subjects`` as one atomic batch: all sent, the last one commits."""
    last = len(subjects) - 1
    for i, subject in enumerate(subjects):
        headers = {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(i + 1)}
        if i < last:
            await nc.publish(subject, PAYLOAD, headers=headers)
            continue
        headers["Nats-Batch-Commit"] = "1"
        reply = await nc.request(subject, PAYLOAD, headers=headers, timeout=5)
        if b"error" in reply.data:
            msg = f"batch refused: {reply.data[:200]!r}"
            raise RuntimeError(msg)


async def _small(js: JetStreamContext, nc: Client, *, atomic: bool, size: int = 4) -> int:
    """MESSAGES in groups of ``size`` (one ticket's writes), four groups in flight at a time."""
    slots = asyncio.Semaphore(4)
    kind = "atomic4" if atomic else "single4"

    async def group(g: int) -> None:
        names = [f"batch.{kind}.{g}.{i}" for i in range(size)]
        async with slots:
            if atomic:
                await _atomic_batch(nc, f"{kind}-{g}", names)
                return
            for subject in names:
                await js.publish(subject, PAYLOAD)

    start = time.perf_counter()
    await asyncio.gather(*(group(g) for g in range(MESSAGES // size)))
    return round(MESSAGES / (time.perf_counter() - start))


def main() -> None:
    results = {}
    for sync in SYNC_MODES:
        server = start_server(Path(tempfile.mkdtemp(prefix="opora-bench-batch-")), sync)
        try:
            results[sync] = asyncio.run(measure(server.url))
        finally:
            server.stop()
        print(f"sync_interval {sync:8}: {results[sync]} messages/s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
