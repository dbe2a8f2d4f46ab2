"""What one ticket costs the bus: durable writes per stream and messages into nats-server.

A fresh stack (``bench/stack.py``); for each channel, N tickets (default 300, 16 in flight),
then a wait until every consumer has caught up; the difference of each stream's last sequence
and of the server's ``in_msgs`` (publishes, fetch requests, acks, direct gets), per ticket.

    .venv/bin/python bench/bench_writes.py [--tickets 300] [--channels http,nats,smtp]
"""

import argparse
import asyncio
import json
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_e2e import wait_quiet
from bench.load import CHANNELS, Channels, Observer, saturate
from bench.stack import BenchStack, launch


def monitor(bench: BenchStack, path: str) -> dict:
    with urllib.request.urlopen(f"{bench.nats.monitor_url}{path}", timeout=5) as response:  # noqa: S310 - loopback
        return dict(json.load(response))


def sequences(bench: BenchStack) -> dict[str, int]:
    data = monitor(bench, "/jsz?streams=true")
    return {
        stream["name"]: stream["state"]["last_seq"]
        for account in data["account_details"]
        for stream in account["stream_detail"]
    }


async def run(bench: BenchStack, channels_: list[str], tickets: int) -> dict:
    observer = Observer(run=uuid.uuid4().hex[:8])
    await observer.start(bench.nats.url)
    channels = Channels(http=bench.http, smtp_port=bench.smtp_port, nats_url=bench.nats.url)
    await channels.open()
    out = {}
    try:
        warm = await saturate(observer, channels, count=20, channel="http", concurrency=4)
        await observer.wait_all(warm)
        first = 100
        for channel in channels_:
            await wait_quiet(bench)
            before, in_before = sequences(bench), monitor(bench, "/varz")["in_msgs"]
            markers = await saturate(
                observer, channels, count=tickets, channel=channel, concurrency=16, first=first
            )
            first += tickets
            await observer.wait_all(markers)
            await wait_quiet(bench)
            after, in_after = sequences(bench), monitor(bench, "/varz")["in_msgs"]
            writes = {
                name: round((seq - before.get(name, 0)) / tickets, 2)
                for name, seq in sorted(after.items())
                if seq != before.get(name, 0)
            }
            out[channel] = {
                "writes_per_ticket": round(sum(writes.values()), 1),
                "by_stream": writes,
                "messages_in_per_ticket": round((in_after - in_before) / tickets, 1),
            }
            print(f"{channel:5} {out[channel]}", flush=True)
    finally:
        await channels.close()
        await observer.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--channels", default=",".join(CHANNELS))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="opora-bench-writes-"))
    bench = launch(root)
    try:
        result = asyncio.run(run(bench, args.channels.split(","), args.tickets))
    finally:
        bench.stop()
        bench.remove()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
