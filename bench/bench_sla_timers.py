"""SLA timers at scale: memory of the sla-timer with N armed timers, fire lateness, recovery.

Starts a fresh nats-server (Opora's config: fsync always) and the sla-timer as a process, arms
N timers (N/4 tickets x 4 timers: first-response and resolution, warning and breach) due in a
window after arming ends, then measures:

- the service's RSS when idle (the baseline, measured in the same run) and with N armed,
  and nats-server's RSS (the timers live in its stream, not in the service);
- fire lateness (the SLA events' late_by_s: due time to the event being stored), p50/p99;
- recovery: the service is killed with SIGKILL while timers fall due and restarted; the time
  from restart to its first event, and whether every expected event arrived exactly once.

Usage: python bench/bench_sla_timers.py [--timers 100000] [--window 60]
Prints a table and a JSON line; writes var/bench/sla_timers.json.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats

from opora_shared import subjects
from opora_shared.events import parse_event
from opora_shared.nats.streams import provision
from opora_shared.stack import ServiceProcess
from opora_shared.testing.contracts import FAST, write_fast_contracts
from opora_shared.testing.factories import make_ticket_classified
from opora_shared.testing.plugin import start_nats
from opora_shared.testing.stored import event_counts
from opora_shared.vocabulary import Priority

TENANT = "bench"
PRIORITY = Priority.P4  # first response 5.4 s, resolution 10.8 s after "received"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def in_process_heap_mb(n: int) -> float:
    """Option B's core cost, for comparison: n timers held in a heap inside the service."""
    import heapq
    import tracemalloc

    tracemalloc.start()
    heap: list[tuple[datetime, str, str, str, int]] = []
    now = datetime.now(UTC)
    for i in range(n):
        heapq.heappush(
            heap,
            (
                now + timedelta(seconds=i % 3600),
                str(10**9 + i // 4),
                ("first_response", "resolution")[i % 2],
                ("warning", "breach")[i % 2],
                1,
            ),
        )
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return size / 2**20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument(
        "--window", type=float, default=60.0, help="seconds over which they fall due"
    )
    parser.add_argument(
        "--firing",
        type=int,
        default=None,
        help="tickets whose timers fall due in the window (default all); the others are due "
        "a day later, armed all along",
    )
    args = parser.parse_args()
    tickets = args.timers // 4
    firing = tickets if args.firing is None else min(tickets, args.firing)
    tmp = Path(tempfile.mkdtemp(prefix="opora-bench-sla-"))
    server = start_nats(tmp / "nats" / "store")
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await provision(js)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPORA_")}
    env |= {
        "OPORA_NATS_URL": server.url,
        "OPORA_METRICS_PORT": "0",
        "OPORA_LOG_LEVEL": "WARNING",
        "OPORA_CONTRACTS_DIR": str(write_fast_contracts(tmp / "contracts", TENANT)),
    }
    service = ServiceProcess("sla-timer", env, tmp / "sla-timer.log")
    service.start()
    assert service.process is not None
    await asyncio.sleep(3)  # let it start before the idle measurement
    idle_rss = rss_mb(service.process.pid)

    arrivals: list[tuple[float, object]] = []

    async def on_event(msg: object) -> None:
        arrivals.append((time.monotonic(), parse_event(msg.data)))  # type: ignore[attr-defined]

    await nc.subscribe(f"{subjects.EVENTS_PREFIX}.{TENANT}.sla.>", cb=on_event)

    # Deadlines fall in [start + lead, start + lead + window]: "received" is set so that the
    # first warning (0.8 x 5.4 s) of the earliest ticket is due after arming has finished.
    lead = max(30.0, tickets / 500)
    start = datetime.now(UTC)
    warn_first = 0.8 * float(FAST["first_response"]["P4"][:-1]) * 60
    t0 = time.monotonic()
    window_per_ticket = args.window / max(1, firing)
    pending = []
    for i in range(tickets):
        received = start + timedelta(seconds=lead - warn_first + i * window_per_ticket)
        if i >= firing:
            received += timedelta(days=1)
        event = make_ticket_classified(
            tenant=TENANT,
            ticket_id=str(10**9 + i),
            occurred_at=start,
            received_at=received,
            priority=PRIORITY,
        )
        pending.append(
            js.publish(
                subjects.event_subject(event),
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": str(event.event_id)},
            )
        )
        if len(pending) >= 500:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)

    def armed() -> int:
        return sum(1 for _, e in arrivals if e.type == "sla.armed")

    while armed() < tickets and time.monotonic() - t0 < lead - 2:
        await asyncio.sleep(0.5)
    arm_s = time.monotonic() - t0
    armed_rss = rss_mb(service.process.pid)
    nats_rss = rss_mb(server.process.pid) if server.process else float("nan")
    info = await js.stream_info(subjects.SLA_STREAM)
    print(
        f"armed {armed()} tickets ({armed() * 4} timers) in {arm_s:.1f} s; "
        f"schedules in stream: {info.state.messages}",
        flush=True,
    )

    # crash while timers fall due: kill at one third of the window, restart 3 s later
    first_due = start + timedelta(seconds=lead)
    kill_at = first_due + timedelta(seconds=args.window / 3)
    await asyncio.sleep(max(0.0, (kill_at - datetime.now(UTC)).total_seconds()))
    killed_at = datetime.now(UTC)
    service.kill9()
    await asyncio.sleep(3)
    restarted = time.monotonic()
    service.start()
    expected = firing * 6  # 2 warnings, 2 breaches, 2 escalations per ticket

    def fired() -> list[object]:
        return [e for _, e in arrivals if e.type != "sla.armed"]

    deadline = time.monotonic() + args.window + 120
    while len(fired()) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    after = [t for t, e in arrivals if t > restarted + 0.0 and e.type != "sla.armed"]
    recovery_s = (min(after) - restarted) if after else float("nan")
    events = fired()
    # duplicates are judged on what the stream stored (a core subscriber also sees publishes
    # that JetStream then dropped as duplicates)
    per_ticket = await event_counts(js, f"{subjects.EVENTS_PREFIX}.{TENANT}.sla.>")
    expected_counts = {"armed": 1, "warning": 2, "breached": 2, "escalated": 2}

    def expected_for(ticket: str) -> dict[str, int]:
        # tickets past ``firing`` are due a day later: armed, nothing fired yet
        return expected_counts if int(ticket) - 10**9 < firing else {"armed": 1}

    duplicates = sum(
        max(0, n - expected_for(ticket).get(name, 0))
        for ticket, counts in per_ticket.items()
        for name, n in counts.items()
    )
    missing = sum(
        max(0, n - counts.get(name, 0))
        for ticket, counts in per_ticket.items()
        for name, n in expected_for(ticket).items()
    )
    missing += (tickets - len(per_ticket)) * sum(expected_counts.values())
    lateness_ms = [1000 * e.late_by_s for e in events if hasattr(e, "late_by_s")]
    # timers that fell due while the service was down (or restarting) are late by design;
    # the lateness figures are over the others
    outage = (killed_at - timedelta(seconds=1), killed_at + timedelta(seconds=3 + recovery_s + 1))
    on_time = [
        1000 * e.late_by_s
        for e in events
        if hasattr(e, "late_by_s") and not outage[0] <= e.due_at <= outage[1]
    ]
    result = {
        "timers": tickets * 4,
        "tickets": tickets,
        "tickets_firing": firing,
        "window_s": args.window,
        "arm_seconds": round(arm_s, 1),
        "sla_timer_rss_mb_idle": round(idle_rss, 1),
        "sla_timer_rss_mb_armed": round(armed_rss, 1),
        "nats_server_rss_mb_armed": round(nats_rss, 1),
        "events_expected": expected,
        "events_received": len(events),
        "duplicates": duplicates,
        "missing": missing,
        "fire_lateness_p50_ms": round(statistics.median(on_time), 1) if on_time else None,
        "fire_lateness_p99_ms": round(pct(on_time, 0.99), 1) if on_time else None,
        "fired_late_by_crash": len(lateness_ms) - len(on_time),
        "fire_lateness_max_during_outage_ms": round(max(lateness_ms), 1) if lateness_ms else None,
        "recovery_first_event_s": round(recovery_s, 2),
    }
    print(
        f"{'sla-timer RSS idle / armed':34} {idle_rss:8.1f} / {armed_rss:.1f} MB "
        f"(ratio {armed_rss / idle_rss:.2f})"
    )
    print(f"{'nats-server RSS armed':34} {nats_rss:8.1f} MB")
    print(
        f"{'fire lateness p50 / p99':34} {result['fire_lateness_p50_ms']} / "
        f"{result['fire_lateness_p99_ms']} ms (excluding {result['fired_late_by_crash']} "
        "held up by the kill -9)"
    )
    print(f"{'events expected / stored dups / missing':34} {expected} / {duplicates} / {missing}")
    print(f"{'restart to first event':34} {recovery_s:.2f} s")
    result["in_process_heap_mb_same_timers"] = round(in_process_heap_mb(tickets * 4), 1)
    print(f"{'option B (in-process heap) memory':34} {result['in_process_heap_mb_same_timers']} MB")
    print(json.dumps(result))
    out = Path("var/bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "sla_timers.json").write_text(json.dumps(result, indent=2) + "\n")
    service.stop()
    await nc.close()
    server.stop()
    if missing or duplicates:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
