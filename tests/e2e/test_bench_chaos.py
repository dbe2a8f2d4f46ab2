"""Chaos at a small scale (bench/chaos.py): kill -9 each service, then nats-server, under load.

Every ticket a client got accepted must end received once, classified once, SLA-armed once and
acknowledged once (one event, one .eml), whatever was killed while it was in flight.
"""

import json
import shutil

import pytest

from bench.chaos import STACK_ENV, TARGETS, chaos
from bench.stack import launch

from .conftest import dump_logs


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("chaos")
    handle = launch(root, **STACK_ENV)
    yield handle
    handle.stop()
    shutil.rmtree(root / "nats", ignore_errors=True)


class TestChaos:
    async def test_nothing_accepted_is_lost_or_doubled_when_each_process_is_killed(self, bench):
        try:
            result = await chaos(
                bench,
                rate=20,
                cycles=1,
                warmup_s=2.0,
                settle_s=2.0,
                down_s=1.0,
                back_timeout_s=30.0,
                quiet_stall_s=30.0,
                quiet_limit_s=60.0,
                give_up_s=45.0,
            )
        except Exception:
            dump_logs(bench.root / "logs")
            raise

        details = result["details"]
        report = json.dumps(
            {k: details[k] for k in ("lost", "duplicated", "lost_examples", "duplicate_examples")},
            ensure_ascii=False,
        )
        if result["chaos_lost"] or result["chaos_duplicates"] or not details["quiet"]:
            dump_logs(bench.root / "logs")
        assert [kill["target"] for kill in result["kills"]] == list(TARGETS)
        assert result["chaos_sent"] > 0
        assert details["gave_up"] == 0, details["gave_up_examples"]
        assert result["chaos_lost"] == 0, report
        assert result["chaos_duplicates"] == 0, report
        assert details["quiet"], details.get("busy")
        assert details["classified"] == details["tickets"] == result["chaos_sent"]
        assert details["acknowledged"] == details["expecting_acknowledgement"] > 0
