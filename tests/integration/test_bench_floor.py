"""The benchmark's transport floors (bench/floor) on the suite's nats-server, at a tiny scale."""

import pytest

from bench.floor.common import Chain
from bench.floor.run import measure_floors_async, server_config
from opora_shared import subjects

PREFIX = "FLOORTEST"


class TestMeasureFloors:
    async def test_every_ticket_crosses_both_chains_and_the_streams_are_removed(self, nats_url, js):
        result = await measure_floors_async(
            nats_url,
            n_messages=500,
            runs=1,
            warmup=0,
            latency_rate=100.0,
            latency_seconds=0.5,
            stream_prefix=PREFIX,
        )

        fs, raw = result["runs"]["faststream"][0], result["runs"]["raw"][0]
        assert fs["messages"] == raw["messages"] == 500  # a run fails unless all arrive
        assert result["floor_tickets_per_s"] > 0
        assert result["raw_floor_per_s"] > 0
        assert result["floor_steady_tickets_per_s"] > 0
        assert result["runs"]["latency"][0]["messages"] == 50
        assert 0 < result["floor_p50_ms"] <= result["floor_p99_ms"]
        names = [info.config.name for info in await js.streams_info()]
        assert not [name for name in names if name.startswith(PREFIX)]
        assert subjects.EVENTS_STREAM in names


class TestNames:
    def test_refuses_a_prefix_that_could_collide_with_oporas_streams(self):
        with pytest.raises(ValueError, match="OPORA"):
            Chain("OPORA_FLOOR", "raw")

    def test_chain_subjects_and_durables(self):
        chain = Chain("FLOOR", "raw")
        assert chain.stream == "FLOOR_RAW"
        assert chain.subject(0) == "floor.raw.s0"
        assert chain.durable(3) == "raw-hop3"


class TestServerConfig:
    @pytest.mark.parametrize(("sync", "expected"), [("always", 1), ("default", 0)])
    def test_sync_interval_is_always_or_left_to_the_server(self, tmp_path, sync, expected):
        text = server_config(sync, tmp_path).read_text()
        assert text.count("sync_interval") == text.count("sync_interval: always") == expected
