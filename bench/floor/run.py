"""Transport floors of ``make bench``: the same four-hop chain in FastStream and in bare nats-py.

    .venv/bin/python -m bench.floor.run [--messages N] [--runs 3] [--sync always|default] [--long]

In the same run and on the same nats-server, two chains of four hop processes each consume a
ticket-sized ``TicketReceived`` from a durable pull consumer, decode and validate it, and
forward it with an acknowledged JetStream publish carrying ``Nats-Msg-Id``:

- ``floor_tickets_per_s``: hops are FastStream apps with Opora's consumer settings
  (``hop_faststream``). Opora's end-to-end throughput divided by it (``floor_ratio``) says
  what Opora's own work costs over the transport;
- ``raw_floor_per_s``: hops in bare nats-py, fetch 100, ``publish_async``, ack the batch
  (``hop_raw``): the practical limit of Python on this bus.

A driver publishes N tickets with ``publish_async`` (a bounded window) and times the first
publish to the last arrival at the end of the chain (also the steady state between 10 % and
90 % of the arrivals); the runs of the two chains alternate, after one warm-up batch each. Then
the FastStream chain's latency (driver send to arrival) at a fixed rate. Each figure is the
median of the runs, with min and max. The CLI starts its own nats-server on free ports with
Opora's config, JetStream ``sync_interval`` either ``always`` (Opora's) or the server's default,
prints a table and one JSON line, and writes ``var/bench/floor-<sync>.json``.

A larger bench that already runs a nats-server calls ``measure_floors(url, ...)`` (or
``measure_floors_async`` inside its event loop): the floors use their own streams,
``<prefix>_FASTSTREAM`` and ``<prefix>_RAW`` on subjects ``<prefix>.>``, deleted afterwards.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import nats

from bench.floor.chain import (
    REPO_ROOT,
    Arrivals,
    HopProcesses,
    create_stream,
    delete_stream,
    latency_run,
    settle,
    throughput_run,
    wait_ready,
)
from bench.floor.common import HOPS, Chain, payloads
from opora_shared.nats.server import NatsServer, free_port

CHAINS = ("faststream", "raw")
NATS_CONFIG = REPO_ROOT / "deploy" / "nats" / "nats-server.conf"
QUICK_MESSAGES, QUICK_LATENCY_S = 5_000, 5.0
"""Quick mode (the default) fits in about a minute with fsync always on this 2-core machine."""
LONG_MESSAGES, LONG_LATENCY_S = 50_000, 30.0

Progress = Callable[[str], None]


def measure_floors(nats_url: str | NatsServer, **options: Any) -> dict[str, Any]:
    """Measure both floors against a running nats-server; the figures as a JSON-ready dict.

    Headline keys (medians over ``runs``): ``floor_tickets_per_s`` and ``raw_floor_per_s``
    (first publish to last arrival), ``floor_steady_tickets_per_s`` and
    ``raw_floor_steady_per_s`` (10-90 % of the arrivals), ``floor_p50_ms``, ``floor_p99_ms``
    and ``floor_max_ms`` (at ``latency_rate``), ``floor_to_raw``; ``spread`` has each one's
    median, min and max, ``runs`` every run's figures, ``config`` the parameters. Run it while
    nothing else loads the machine (Opora's services idle): the hops share its cores.

    Blocking (it runs its own event loop); ``options`` are ``measure_floors_async``'s. Inside a
    running loop, await ``measure_floors_async`` with the same arguments instead.
    """
    return asyncio.run(measure_floors_async(nats_url, **options))


async def measure_floors_async(
    nats_url: str | NatsServer,
    *,
    n_messages: int = QUICK_MESSAGES,
    runs: int = 3,
    window: int = 1000,
    warmup: int = 1000,
    latency_rate: float = 200.0,
    latency_seconds: float = QUICK_LATENCY_S,
    stream_prefix: str = "FLOOR",
    chains: Sequence[str] = CHAINS,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``measure_floors`` for callers that already run an event loop.

    Starting and stopping the hop processes blocks the loop briefly (about a second).
    """
    if n_messages < 10 or runs < 1:
        msg = "need at least 10 messages and one run"
        raise ValueError(msg)
    url = nats_url.url if isinstance(nats_url, NatsServer) else nats_url
    say = progress or (lambda _line: None)
    started, load_before = time.monotonic(), os.getloadavg()[0]
    chain_of = {kind: Chain(stream_prefix, kind) for kind in chains}
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in chains}
    latencies: list[dict[str, float]] = []
    nc = await nats.connect(url, name="floor-driver")
    js = nc.jetstream(publish_async_max_pending=window)
    log_dir = Path(tempfile.mkdtemp(prefix="opora-floor-"))
    hops = HopProcesses(log_dir)
    failed = False
    try:
        for chain in chain_of.values():
            await create_stream(js, chain)
        for chain in chain_of.values():
            hops.start(chain, url)
        arrivals = {kind: Arrivals() for kind in chains}
        for kind, chain in chain_of.items():
            await arrivals[kind].subscribe(nc, chain)
            await wait_ready(js, chain, hops)
        say(f"hops ready after {time.monotonic() - started:.1f} s")
        for kind, chain in chain_of.items():
            if warmup:
                await throughput_run(js, chain, arrivals[kind], hops, payloads(warmup))
                await settle(js, chain, hops)
        for run in range(runs):
            for kind, chain in chain_of.items():
                items = payloads(n_messages)
                result = await throughput_run(js, chain, arrivals[kind], hops, items)
                await settle(js, chain, hops)
                results[kind].append(result)
                say(
                    f"{kind:>10} run {run + 1}/{runs}: {result['per_s']:,.0f} msg/s "
                    f"(steady {result['steady_per_s']:,.0f})"
                )
        if "faststream" in chain_of and latency_seconds > 0:
            chain = chain_of["faststream"]
            count = max(2, round(latency_rate * latency_seconds))
            for run in range(runs):
                latency = await latency_run(
                    js, chain, arrivals["faststream"], hops, payloads(count), rate=latency_rate
                )
                await settle(js, chain, hops)
                latencies.append(latency)
                say(
                    f"   latency run {run + 1}/{runs} at {latency['rate_per_s']:.0f} msg/s: "
                    f"p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms"
                )
    except Exception:
        failed = True
        raise
    finally:
        hops.stop()
        for chain in chain_of.values():
            with contextlib.suppress(Exception):
                await delete_stream(js, chain)
        await nc.close()
        if failed:
            say(f"hop logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    return _summary(
        results,
        latencies,
        config={
            "hops": HOPS,
            "n_messages": n_messages,
            "runs": runs,
            "window": window,
            "warmup": warmup,
            "latency_rate_per_s": latency_rate,
            "latency_seconds": latency_seconds,
            "payload_bytes": len(payloads(1)[0][1]),
            "streams": [chain.stream for chain in chain_of.values()],
            "seconds": round(time.monotonic() - started, 1),
            # 1-minute load average: above ~2 on two cores, something else shared the machine
            "loadavg_before": round(load_before, 2),
            "loadavg_after": round(os.getloadavg()[0], 2),
        },
    )


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def _summary(
    results: dict[str, list[dict[str, float]]],
    latencies: list[dict[str, float]],
    *,
    config: dict[str, Any],
) -> dict[str, Any]:
    spread: dict[str, dict[str, float]] = {}
    names = {
        "faststream": ("floor_tickets_per_s", "floor_steady_tickets_per_s"),
        "raw": ("raw_floor_per_s", "raw_floor_steady_per_s"),
    }
    for kind, runs in results.items():
        if runs:
            total, steady = names[kind]
            spread[total] = _spread([r["per_s"] for r in runs])
            spread[steady] = _spread([r["steady_per_s"] for r in runs])
    if latencies:
        spread["floor_p50_ms"] = _spread([r["p50_ms"] for r in latencies])
        spread["floor_p99_ms"] = _spread([r["p99_ms"] for r in latencies])
        spread["floor_max_ms"] = _spread([r["max_ms"] for r in latencies])
    summary: dict[str, Any] = {name: s["median"] for name, s in spread.items()}
    if "floor_tickets_per_s" in summary and "raw_floor_per_s" in summary:
        summary["floor_to_raw"] = round(
            summary["floor_tickets_per_s"] / summary["raw_floor_per_s"], 3
        )
    summary["spread"] = spread
    summary["runs"] = {**results, "latency": latencies}
    summary["config"] = config
    return summary


def server_config(sync: str, directory: Path) -> Path:
    """Opora's nats-server config with JetStream ``sync_interval`` = ``always`` or the default."""
    lines = [
        line
        for line in NATS_CONFIG.read_text(encoding="utf-8").splitlines()
        if not re.match(r"\s*sync_interval\s*:", line)
    ]
    if sync == "always":
        at = next(i for i, line in enumerate(lines) if re.match(r"\s*jetstream\s*\{", line))
        lines.insert(at + 1, "  sync_interval: always")
    elif sync != "default":
        msg = f"sync must be 'always' or 'default', not {sync!r}"
        raise ValueError(msg)
    path = directory / f"nats-server-{sync}.conf"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def floor_server(sync: str = "always") -> Iterator[NatsServer]:
    """A fresh nats-server on free ports, its config and store in a temporary directory."""
    tmp = Path(tempfile.mkdtemp(prefix="opora-floor-nats-"))
    server = NatsServer(
        store_dir=tmp / "store",
        config=server_config(sync, tmp),
        port=free_port(),
        monitor_port=free_port(),
        log_file=tmp / "nats.log",
    )
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def sync_interval(server: NatsServer) -> str:
    """The JetStream sync interval the server reports on /varz (what it really runs with)."""
    with urllib.request.urlopen(f"{server.monitor_url}/varz", timeout=5) as response:  # noqa: S310
        varz = json.load(response)
    config = varz.get("jetstream", {}).get("config", {})
    if config.get("sync_always"):
        return "always"
    interval = config.get("sync_interval")
    return f"{interval / 1e9:g} s" if isinstance(interval, int | float) else "default"


def print_table(result: dict[str, Any], *, title: str) -> None:
    """The figures, one per line: median, min-max over the runs."""
    labels = {
        "floor_tickets_per_s": ("FastStream chain, first publish to last arrival", "msg/s"),
        "floor_steady_tickets_per_s": ("FastStream chain, steady state (10-90 %)", "msg/s"),
        "raw_floor_per_s": ("nats-py chain, first publish to last arrival", "msg/s"),
        "raw_floor_steady_per_s": ("nats-py chain, steady state (10-90 %)", "msg/s"),
        "floor_p50_ms": ("FastStream chain latency p50", "ms"),
        "floor_p99_ms": ("FastStream chain latency p99", "ms"),
        "floor_max_ms": ("FastStream chain latency max", "ms"),
    }
    config = result["config"]
    print(f"\n{title}")
    print(
        f"{HOPS} hops, {config['n_messages']:,} tickets of {config['payload_bytes']} B per run, "
        f"{config['runs']} runs, latency at {config['latency_rate_per_s']:g} msg/s for "
        f"{config['latency_seconds']:g} s, {config['seconds']:.0f} s in all "
        f"(load average {config['loadavg_before']:.1f} before, {config['loadavg_after']:.1f} after)"
    )
    print(f"{'figure':<52} {'median':>10} {'min':>10} {'max':>10}")
    for name, (label, unit) in labels.items():
        spread = result["spread"].get(name)
        if spread is None:
            continue
        print(
            f"{label + ' (' + unit + ')':<52} {spread['median']:>10,.1f} "
            f"{spread['min']:>10,.1f} {spread['max']:>10,.1f}"
        )
    if "floor_to_raw" in result:
        print(f"{'FastStream floor / nats-py floor':<52} {result['floor_to_raw']:>10.3f}")


def main(argv: Sequence[str] | None = None) -> None:
    """The CLI: start a nats-server, measure both floors, print a table and a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, help="tickets per throughput run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sync", choices=["always", "default"], default="always")
    parser.add_argument(
        "--long", action="store_true", help="50k tickets per run, 30 s of latency per run"
    )
    parser.add_argument("--latency-seconds", type=float)
    parser.add_argument("--window", type=int, default=1000, help="driver's publish_async window")
    parser.add_argument("--out", type=Path, help="JSON file (default var/bench/floor-<sync>.json)")
    args = parser.parse_args(argv)
    n_messages = args.messages or (LONG_MESSAGES if args.long else QUICK_MESSAGES)
    latency_seconds = args.latency_seconds
    if latency_seconds is None:
        latency_seconds = LONG_LATENCY_S if args.long else QUICK_LATENCY_S

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        with floor_server(args.sync) as server:
            sync = sync_interval(server)
            say(f"nats-server at {server.url}, JetStream sync: {sync}")
            result = measure_floors(
                server,
                n_messages=n_messages,
                runs=args.runs,
                window=args.window,
                latency_seconds=latency_seconds,
                progress=say,
            )
    except KeyboardInterrupt:
        say("interrupted: hops and nats-server stopped")
        raise SystemExit(130) from None
    result["config"]["sync"] = args.sync
    result["config"]["server_sync"] = sync
    print_table(result, title=f"Transport floors (JetStream sync: {sync})")
    out = args.out or REPO_ROOT / "var" / "bench" / f"floor-{args.sync}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "spread")}))


if __name__ == "__main__":
    main()
