"""`opora provision` brings buckets made by an older version up to date (direct gets)."""

import nats
from nats.js.api import KeyValueConfig, StorageType

from opora_shared import subjects
from opora_shared.nats.streams import provision
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
