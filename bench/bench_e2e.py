"""End to end: tickets in through HTTP, SMTP and NATS, out as the client's acknowledgement.

A fresh nats-server and the four services as processes (``bench/stack.py``). After a warm-up
(tickets through every channel, waited for), two measurements:

- latency at a fixed rate (default 200 tickets/s, open loop, the three channels in turn):
  p50/p95/p99 from the channel call to the acknowledgement's ``notification.sent`` event;
- throughput at saturation: a burst of tickets (an alert storm on the NATS integrator subject,
  and the same through HTTP), tickets/s from the first send to the last acknowledgement.

Also the CPU seconds each process spent during the burst (where the time goes) and the
per-ticket acknowledgement count (must be 1). Prints a table and, last, one JSON line.

    .venv/bin/python bench/bench_e2e.py [--sync always|default] [--rate 200] [--seconds 15]
                                        [--burst 5000]
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import CHANNELS, Channels, Observer, fixed_rate, percentile, saturate
from bench.stack import BenchStack, launch
from opora_shared.service import run_loop

CLK_TCK = 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_pids(bench: BenchStack) -> dict[str, int]:
    pids = {
        name: svc.process.pid
        for name, svc in bench.stack.services.items()
        if svc.process is not None
    }
    if bench.nats.process is not None:
        pids["nats-server"] = bench.nats.process.pid
    return pids


def backlog(bench: BenchStack) -> int:
    """Messages Opora's durable consumers have not finished yet (pending plus unacknowledged).

    The services' history taps (ephemeral ordered consumers) are left out: they keep nothing.
    """
    url = f"{bench.nats.monitor_url}/jsz?consumers=true&config=true"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        data = json.load(response)
    return sum(
        consumer["num_pending"] + consumer["num_ack_pending"]
        for account in data.get("account_details", [])
        for stream in account.get("stream_detail", [])
        if stream["name"].startswith("OPORA_")
        for consumer in stream.get("consumer_detail") or []
        if (consumer.get("config") or {}).get("durable_name")
    )


async def wait_quiet(bench: BenchStack, *, timeout: float = 180.0) -> float:
    """Poll until every consumer has caught up (the previous phase's after-effects are done)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if await asyncio.to_thread(backlog, bench) == 0:
            break
        await asyncio.sleep(0.5)
    return round(time.perf_counter() - start, 1)


def summary(observer: Observer, markers: list[str], channel: str | None = None) -> dict:
    values = observer.latencies_ms(markers, channel)
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 1),
        "p95_ms": round(percentile(values, 95), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(values[-1], 1) if values else 0.0,
    }


async def burst(
    observer: Observer,
    channels: Channels,
    bench: BenchStack,
    *,
    channel: str,
    count: int,
    first: int,
    concurrency: int,
) -> dict:
    pids = process_pids(bench)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.perf_counter()
    markers = await saturate(
        observer, channels, count=count, channel=channel, concurrency=concurrency, first=first
    )
    sent_s = time.perf_counter() - start
    missing = await observer.wait_all(markers)
    done = [observer.acked[m] for m in markers if m in observer.acked]
    elapsed = max(done) - start if done else float("nan")
    cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 2) for name, pid in pids.items()}
    ack_times = sorted(done)
    # Steady state: the middle 80% of acknowledgements over the time they took.
    lo, hi = ack_times[len(ack_times) // 10], ack_times[(len(ack_times) * 9) // 10 - 1]
    steady = (len(ack_times) * 8 // 10) / (hi - lo) if hi > lo else float("nan")
    return {
        "channel": channel,
        "tickets": count,
        "acknowledged": len(done),
        "missing": len(missing),
        "send_s": round(sent_s, 2),
        "elapsed_s": round(elapsed, 2),
        "tickets_per_s": round(len(done) / elapsed, 1),
        "steady_tickets_per_s": round(steady, 1),
        "cpu_s": cpu,
        "cpu_ms_per_ticket": round(sum(cpu.values()) * 1000 / max(1, len(done)), 2),
        **summary(observer, markers),
    }


async def run(bench: BenchStack, args: argparse.Namespace) -> dict:
    observer = Observer(run=uuid.uuid4().hex[:8])
    await observer.start(bench.nats.url)
    channels = Channels(http=bench.http, smtp_port=bench.smtp_port, nats_url=bench.nats.url)
    await channels.open()
    try:
        n = 0
        warm = await fixed_rate(observer, channels, rate=50, seconds=2, mix=CHANNELS, first=n)
        n += len(warm)
        if missing := await observer.wait_all(warm, idle_timeout=60):
            msg = f"warm-up: {len(missing)} of {len(warm)} tickets never acknowledged"
            raise RuntimeError(msg)

        fixed_rates = []
        for rate in (args.rate, *args.also_rates):
            await wait_quiet(bench)
            steady = await fixed_rate(
                observer, channels, rate=rate, seconds=args.seconds, mix=CHANNELS, first=n
            )
            n += len(steady)
            steady_missing = await observer.wait_all(steady)
            fixed_rates.append(
                {
                    "rate": rate,
                    "seconds": args.seconds,
                    "missing": len(steady_missing),
                    **summary(observer, steady),
                    "per_channel": {c: summary(observer, steady, c) for c in CHANNELS},
                }
            )

        bursts = {}
        quiet_s = {}
        for channel, concurrency in (("http", 64), ("nats", 256)):
            count = args.burst if channel == "nats" else args.burst // 2
            quiet_s[channel] = await wait_quiet(bench)
            bursts[channel] = await burst(
                observer,
                channels,
                bench,
                channel=channel,
                count=count,
                first=n,
                concurrency=concurrency,
            )
            n += count
        duplicates = sum(1 for c in observer.ack_counts.values() if c > 1)
        return {
            "fixed_rate": fixed_rates[0],
            "fixed_rates": fixed_rates,
            "burst": bursts,
            "quiet_wait_s": quiet_s,
            "tickets": n,
            "ack_duplicates": duplicates,
            "send_errors": channels.errors,
        }
    finally:
        await channels.close()
        await observer.stop()


def print_table(result: dict) -> None:
    for fixed in result["fixed_rates"]:
        print(f"\nfixed rate {fixed['rate']}/s for {fixed['seconds']} s ({result['sync']}):")
        print(f"  {'channel':8} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        rows = [*fixed["per_channel"].items(), ("all", fixed)]
        for name, row in rows:
            print(
                f"  {name:8} {row['n']:>6} {row['p50_ms']:>8} {row['p95_ms']:>8} "
                f"{row['p99_ms']:>8} {row['max_ms']:>8}"
            )
    for channel, row in result["burst"].items():
        print(
            f"burst {channel}: {row['acknowledged']}/{row['tickets']} acknowledged, "
            f"{row['tickets_per_s']} tickets/s (steady {row['steady_tickets_per_s']}), "
            f"p50 {row['p50_ms']} ms, CPU {row['cpu_ms_per_ticket']} ms/ticket {row['cpu_s']}"
        )
    print(f"acknowledgement duplicates: {result['ack_duplicates']}, errors {result['send_errors']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sync", choices=("always", "default"), default="always")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument(
        "--also-rates",
        type=float,
        nargs="*",
        default=[50.0],
        help="further fixed rates to measure latency at (tickets/s)",
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="opora-bench-e2e-"))
    bench = launch(root, sync=args.sync)
    try:
        result = {"sync": args.sync, **run_loop(run(bench, args))}
    finally:
        bench.stop()
        if not args.keep:
            bench.remove()
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
