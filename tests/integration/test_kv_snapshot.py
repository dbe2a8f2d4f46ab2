"""Every current value of a bucket, read at once, ending where the stream says (not nats-py)."""

import time
import uuid

import pytest
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from opora_shared.nats.kv import kv_snapshot


@pytest.fixture
async def bucket(js):
    name = f"snap{uuid.uuid4().hex[:8]}"
    kv = await js.create_key_value(KeyValueConfig(bucket=name, direct=True, history=1))
    yield name, kv
    await js.delete_key_value(name)


def keys(entries) -> list[str]:
    return [e.key for e in entries]


class TestSnapshot:
    async def test_every_live_key_oldest_first_without_deleted_or_purged_ones(self, js, bucket):
        name, kv = bucket
        for key in ("a.1", "b.1", "a.2", "a.3", "b.2"):
            await kv.put(key, key.encode())
        await kv.put("a.1", b"newer")
        await kv.delete("a.2")
        await kv.purge("b.2")  # the stream's newest message is a purge marker
        entries = await kv_snapshot(js, name)
        assert keys(entries) == ["b.1", "a.3", "a.1"]
        assert entries[-1].value == b"newer"
        assert keys(await kv_snapshot(js, name, "a.*")) == ["a.3", "a.1"]

    async def test_an_empty_pattern_answers_at_once(self, js, bucket):
        name, kv = bucket
        assert await kv_snapshot(js, name) == []
        await kv.put("a.1", b"x")
        started = time.monotonic()
        assert await kv_snapshot(js, name, "zzz.*", timeout=5.0) == []
        assert time.monotonic() - started < 2.0

    async def test_a_premature_end_marker_does_not_end_it(self, js, bucket, monkeypatch):
        """nats-py marks the end with a None derived from the consumer's pending count, and
        puts it first when the server pushed the values before answering the count."""
        name, kv = bucket
        for i in range(5):
            await kv.put(f"k.{i}", b"v")
        watch = KeyValue.watch

        async def early_none(self, *args, **kwargs):
            watcher = await watch(self, *args, **kwargs)
            updates = watcher.updates
            first = [True]

            async def updates_with_none_first(timeout=5.0):
                if first[0]:
                    first[0] = False
                    return None
                return await updates(timeout=timeout)

            watcher.updates = updates_with_none_first
            return watcher

        monkeypatch.setattr(KeyValue, "watch", early_none)
        assert keys(await kv_snapshot(js, name)) == [f"k.{i}" for i in range(5)]
