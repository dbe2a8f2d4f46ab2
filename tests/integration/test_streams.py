import json
import urllib.request

from nats.js.api import StorageType

from opora_shared import subjects
from opora_shared.nats.streams import StorePolicy, check_ready, provision


class TestProvisioning:
    async def test_is_idempotent_and_leaves_everything_ready(self, js):
        await provision(js)
        await provision(js)
        assert await check_ready(js) == []

    async def test_events_stream_is_durable_deduplicating_and_readable_directly(self, js):
        info = await js.stream_info(subjects.EVENTS_STREAM)
        assert info.config.storage == StorageType.FILE
        assert info.config.subjects == ["opora.ev.>"]
        assert info.config.duplicate_window == StorePolicy().duplicate_window_s
        assert info.config.allow_direct is True
        assert info.config.max_age in (0, None)  # the audit trail is kept

    async def test_a_changed_policy_updates_the_stream(self, js):
        await provision(js, StorePolicy(dlq_max_age_s=3600))
        assert (await js.stream_info(subjects.DLQ_STREAM)).config.max_age == 3600
        await provision(js)
        assert (
            await js.stream_info(subjects.DLQ_STREAM)
        ).config.max_age == StorePolicy().dlq_max_age_s

    def test_server_runs_with_fsync_on_every_write(self, nats_server):
        if nats_server.server is None:  # the Docker image has its own config
            return
        with urllib.request.urlopen(f"{nats_server.server.monitor_url}/varz") as response:
            varz = json.load(response)
        assert varz["jetstream"]["config"]["sync_always"] is True
