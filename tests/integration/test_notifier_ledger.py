"""The rate windows in JetStream KV: a storm of notices to one recipient, one or two replicas."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

from opora_notifier.adapters.ledger_kv import KvLedger, rate_key
from opora_shared import subjects


def count_writes(kv) -> list[str]:
    """Record every create/update the bucket handle is asked for (successful or not)."""
    writes: list[str] = []
    create, update = kv.create, kv.update

    async def counted_create(key, value, **kwargs):
        writes.append(key)
        return await create(key, value, **kwargs)

    async def counted_update(key, value, **kwargs):
        writes.append(key)
        return await update(key, value, **kwargs)

    kv.create, kv.update = counted_create, counted_update
    return writes


class TestRateWindow:
    async def test_a_storm_to_one_recipient_counts_each_notice_once_without_conflicts(self, js):
        ledger = KvLedger(js)
        writes = count_writes(await ledger._bucket())
        recipient = f"email:storm-{uuid.uuid4().hex[:8]}@vector.example"
        now = datetime.now(UTC)
        decisions = await asyncio.gather(
            *(
                ledger.admit(recipient, now=now, limit=30, period_s=3600, urgent=False)
                for _ in range(40)
            )
        )
        assert sum(d.admitted for d in decisions) == 30  # the limit holds under a storm
        assert len(writes) == 30  # one write per admitted notice, none lost to a conflict
        entry = await (await js.key_value(subjects.NOTIFY_BUCKET)).get(rate_key(recipient))
        assert len(json.loads(entry.value)) == 30

    async def test_replicas_taking_turns_read_each_others_writes(self, js):
        recipient = f"email:pair-{uuid.uuid4().hex[:8]}@vector.example"
        now = datetime.now(UTC)
        one, two = KvLedger(js), KvLedger(js)
        decisions = [
            await ledger.admit(recipient, now=now, limit=3, period_s=3600, urgent=False)
            for ledger in (one, two, one, two)
        ]
        assert [d.admitted for d in decisions] == [True, True, True, False]
        assert len(decisions[2].window) == 3  # "one" saw what "two" wrote after its own write
        assert decisions[3].retry_at is not None
