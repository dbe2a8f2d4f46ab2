"""The load projection's store against a real nats-server: per-ticket keys, replicas, old layout."""

import uuid
from datetime import UTC, datetime

import pytest
from nats.js.errors import KeyNotFoundError

from opora_classifier.adapters.load_kv import STREAM, LoadStore, meta_key, open_key
from opora_classifier.routing import EngineerLoad, OpenTicket
from opora_shared import subjects
from opora_shared.vocabulary import Priority

AT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def entry(priority: Priority = Priority.P3) -> OpenTicket:
    return OpenTicket(tenant="romashka", priority=priority, assigned_at=AT)


def engineer() -> str:
    return f"eng-{uuid.uuid4().hex[:8]}"


async def stored_messages(js) -> int:
    return (await js.stream_info(STREAM)).state.last_seq


class TestLoadStore:
    async def test_a_change_writes_only_the_ticket_it_changes(self, js):
        store, who = LoadStore(js), engineer()
        for n in range(50):
            await store.change(who, lambda load, n=n: load.with_ticket(str(n), entry()))
        before = await stored_messages(js)
        await store.change(who, lambda load: load.with_ticket("50", entry(), assigned=AT))
        # one key for the ticket, one for the round-robin mark; not the 50 others
        assert await stored_messages(js) - before == 2
        load = await store.get(who)
        assert (load.count, load.last_assigned_at) == (51, AT)

    async def test_applying_a_change_twice_changes_nothing(self, js):
        store, who = LoadStore(js), engineer()
        await store.change(who, lambda load: load.with_ticket("1", entry()))
        before = await stored_messages(js)
        await store.change(who, lambda load: load.with_ticket("1", entry()))
        await store.change(who, lambda load: load.without_ticket("2"))
        assert await stored_messages(js) == before
        assert list((await store.get(who)).open) == ["1"]

    async def test_a_replica_reads_what_another_wrote(self, js):
        one, two, who = LoadStore(js), LoadStore(js), engineer()
        await one.change(who, lambda load: load.with_ticket("1", entry()))
        await two.change(who, lambda load: load.with_ticket("2", entry(Priority.P1)))
        await one.change(who, lambda load: load.without_ticket("1"))
        for store in (one, two):
            load = await store.get(who)
            assert {t: e.priority for t, e in load.open.items()} == {"2": Priority.P1}

    async def test_its_own_writes_are_not_read_back_but_a_replicas_between_them_are(self, js):
        one, two, who = LoadStore(js), LoadStore(js), engineer()
        await one.catch_up()
        reads: list[int] = []
        get_msg = js.get_msg

        async def counted(stream, *args, **kwargs):
            if stream == STREAM:
                reads.append(kwargs["seq"])
            return await get_msg(stream, *args, **kwargs)

        js.get_msg = counted
        try:
            await one.change(who, lambda load: load.with_ticket("1", entry(), assigned=AT))
            reads.clear()
            await one.catch_up()
            assert len(reads) == 1  # the two keys it wrote stepped over; one read finds nothing
            await two.change(who, lambda load: load.with_ticket("2", entry()))
            await one.change(who, lambda load: load.with_ticket("3", entry()))
            reads.clear()
            load = await one.get(who)
            assert sorted(load.open) == ["1", "2", "3"]
            assert len(reads) == 1  # all passed already: the replica's write was read before 3
        finally:
            del js.get_msg

    async def test_a_load_in_the_first_layout_is_moved_to_per_ticket_keys(self, js):
        who = engineer()
        kv = await js.key_value(subjects.LOAD_BUCKET)
        old = EngineerLoad(open={"7": entry(), "8": entry(Priority.P2)}, last_assigned_at=AT)
        await kv.put(who, old.model_dump_json().encode())
        store = LoadStore(js)
        load = await store.get(who)
        assert (sorted(load.open), load.last_assigned_at) == (["7", "8"], AT)
        assert who in await store.engineer_ids()
        # the old value is gone, the new keys are there; a fresh reader sees the same
        with pytest.raises(KeyNotFoundError):
            await kv.get(who)
        assert (await kv.get(open_key(who, "8"))).value is not None
        assert (await kv.get(meta_key(who))).value is not None
        fresh = await LoadStore(js).get(who)
        assert (sorted(fresh.open), fresh.last_assigned_at) == (["7", "8"], AT)

    async def test_delete_forgets_the_engineer(self, js):
        store, who = LoadStore(js), engineer()
        await store.change(who, lambda load: load.with_ticket("1", entry(), assigned=AT))
        await store.delete(who)
        assert (await store.get(who)).count == 0
        assert who not in await LoadStore(js).engineer_ids()
