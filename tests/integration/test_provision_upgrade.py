"""`opora provision` brings streams and buckets made by an older version up to date (direct
gets, atomic batches)."""

import nats
from nats.js.api import KeyValueConfig, StorageType, StreamConfig

from opora_shared import subjects
from opora_shared.nats.streams import ATOMIC_BUCKETS, StorePolicy, provision, stream_configs
from opora_shared.testing.plugin import start_nats


async def test_an_old_bucket_gets_direct_gets_and_keeps_its_values(tmp_path):
    server = start_nats(tmp_path / "store")
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        old = await js.create_key_value(
            KeyValueConfig(bucket=subjects.LOAD_BUCKET, history=1, storage=StorageType.FILE)
        )
        await old.put("maria", b"{}")
        stream = f"KV_{subjects.LOAD_BUCKET}"
        assert not (await js.stream_info(stream)).config.allow_direct
        await provision(js)
        await provision(js)  # twice: nothing left to change
        assert (await js.stream_info(stream)).config.allow_direct
        kv = await js.key_value(subjects.LOAD_BUCKET)
        assert (await kv.get("maria")).value == b"{}"
        await nc.close()
    finally:
        server.stop()


async def test_streams_made_before_atomic_batches_get_them_where_batch_stages_write(tmp_path):
    server = start_nats(tmp_path / "store")
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        events = next(c for c in stream_configs(StorePolicy()) if c.name == subjects.EVENTS_STREAM)
        await js.add_stream(StreamConfig.from_response({**events.as_dict(), "allow_atomic": False}))
        old = await js.create_key_value(
            KeyValueConfig(bucket=subjects.TICKETS_BUCKET, history=1, storage=StorageType.FILE)
        )
        await old.put("romashka.1", b"{}")
        await provision(js)
        assert (await js.stream_info(subjects.EVENTS_STREAM)).config.allow_atomic
        for bucket in ATOMIC_BUCKETS:
            assert (await js.stream_info(f"KV_{bucket}")).config.allow_atomic
        assert not (await js.stream_info(f"KV_{subjects.LOAD_BUCKET}")).config.allow_atomic
        kv = await js.key_value(subjects.TICKETS_BUCKET)
        assert (await kv.get("romashka.1")).value == b"{}"
        await nc.close()
    finally:
        server.stop()
