"""bench/bench_rate.py at a small rate: CPU per process and ticket, and when events came."""

import shutil

import pytest

from bench.bench_rate import run
from bench.stack import launch

from .conftest import dump_logs


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("rate")
    handle = launch(root)
    yield handle
    handle.stop()
    shutil.rmtree(root / "nats", ignore_errors=True)


async def test_a_fixed_rate_reports_cost_per_process_and_stage_latencies(bench):
    try:
        result = await run(bench, rate=20, seconds=1.0, mix=("http", "nats"))
    except Exception:
        dump_logs(bench.root / "logs")
        raise
    assert result["tickets"] == 20
    cpu = result["cpu_ms_per_ticket"]
    assert set(cpu) == {
        "intake",
        "classifier",
        "sla-timer",
        "notifier",
        "nats-server",
        "load generator",
    }
    # /proc counts CPU in 10 ms ticks: a small run may show one process at 0
    assert sum(cpu.values()) > 0, cpu
    assert all(ms >= 0 for ms in cpu.values()), cpu
    # every ticket stores at least its receipt, verdict, assignment and armed clocks
    assert result["stored_per_ticket"]["OPORA_EVENTS"] >= 4
    assert result["stored_per_ticket"]["OPORA_SLA"] == 4
    assert {"received", "classified", "assigned", "armed"} <= set(result["stages_ms"])
    assert set(result["e2e_ms"]) == {"http", "nats", "all"}
