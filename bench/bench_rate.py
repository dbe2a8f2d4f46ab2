"""What a ticket costs at a fixed rate: CPU of each process, stored messages, stage latencies.

A fresh stack (``bench/stack.py``); a two-second warm-up at 50 tickets/s, then open-loop load
at ``--rate`` for ``--seconds`` (round-robin over ``--channels``), waited for. It prints the CPU
each process and this load generator spent per ticket, the messages each stream stored per
ticket, when each event type of a ticket arrived after its ``ticket.received`` (p50 / p90 /
p99, ms), and the end-to-end latency per channel as ``make bench`` measures it. A burst
(``bench_e2e.py``) shows the cost when every stage's batches are full; this shows it at the
rates where they are not.

    .venv/bin/python bench/bench_rate.py [--rate 100] [--seconds 8] [--channels http,smtp,nats]
"""

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

import nats
from nats.aio.msg import Msg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_e2e import cpu_seconds, process_pids, wait_quiet
from bench.bench_writes import sequences
from bench.load import CHANNELS, Channels, Observer, fixed_rate, percentile
from bench.stack import BenchStack, launch
from opora_shared.service import run_loop


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    return " / ".join(f"{percentile(ordered, q):.1f}" for q in (50, 90, 99))


async def run(bench: BenchStack, rate: float, seconds: float, mix: tuple[str, ...]) -> dict:
    observer = Observer(run=uuid.uuid4().hex[:8])
    await observer.start(bench.nats.url)
    channels = Channels(http=bench.http, smtp_port=bench.smtp_port, nats_url=bench.nats.url)
    await channels.open()
    nc = await nats.connect(bench.nats.url)
    loop = asyncio.get_running_loop()
    arrivals: dict[str, dict[str, float]] = collections.defaultdict(dict)

    async def arrived(msg: Msg) -> None:  # opora.ev.<tenant>.<kind>.<ticket>.<what>
        parts = msg.subject.split(".")
        what = parts[-1]
        if what == "sent":
            what = f"sent:{json.loads(msg.data).get('trigger', '?')}"
        arrivals[parts[4]].setdefault(what, loop.time())

    try:
        await nc.subscribe("opora.ev.>", cb=arrived)
        warm = await fixed_rate(observer, channels, rate=50, seconds=2, mix=mix)
        await observer.wait_all(warm, idle_timeout=60)
        await wait_quiet(bench)
        arrivals.clear()
        pids = process_pids(bench)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own_before, stored_before = os.times(), sequences(bench)
        markers = await fixed_rate(
            observer, channels, rate=rate, seconds=seconds, mix=mix, first=len(warm)
        )
        await observer.wait_all(markers, idle_timeout=60)
        n = len(markers)
        own_after = os.times()
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / n * 1000 for name, pid in pids.items()}
        cpu["load generator"] = (
            (own_after.user + own_after.system - own_before.user - own_before.system) / n * 1000
        )
        await wait_quiet(bench)
        stored = {
            name: round((seq - stored_before.get(name, 0)) / n, 2)
            for name, seq in sorted(sequences(bench).items())
            if seq != stored_before.get(name, 0)
        }
        stages: dict[str, list[float]] = collections.defaultdict(list)
        for events in arrivals.values():
            if "received" in events:
                for what, at in events.items():
                    stages[what].append((at - events["received"]) * 1000)
        return {
            "tickets": n,
            "cpu_ms_per_ticket": {name: round(ms, 2) for name, ms in cpu.items()},
            "stored_per_ticket": stored,
            "stages_ms": {what: quantiles(v) for what, v in stages.items()},
            "e2e_ms": {c: quantiles(observer.latencies_ms(markers, c)) for c in mix}
            | {"all": quantiles(observer.latencies_ms(markers))},
        }
    finally:
        await nc.close()
        await channels.close()
        await observer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--channels", default=",".join(CHANNELS))
    args = parser.parse_args()
    bench = launch(Path(tempfile.mkdtemp(prefix="opora-bench-rate-")))
    try:
        result = run_loop(run(bench, args.rate, args.seconds, tuple(args.channels.split(","))))
    finally:
        bench.stop()
        bench.remove()
    cpu = result["cpu_ms_per_ticket"]
    print(f"{result['tickets']} tickets at {args.rate:g}/s ({args.channels})")
    print("CPU per ticket, ms:", ", ".join(f"{k} {v}" for k, v in cpu.items()))
    print("  all five:", round(sum(v for k, v in cpu.items() if k != "load generator"), 2))
    print("stored per ticket:", result["stored_per_ticket"])
    print("after ticket.received, ms (p50 / p90 / p99):")
    for what, q in sorted(result["stages_ms"].items(), key=lambda kv: float(kv[1].split()[0])):
        print(f"  {what:26} {q}")
    print("end to end, ms (p50 / p90 / p99):")
    for channel, q in result["e2e_ms"].items():
        print(f"  {channel:26} {q}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
