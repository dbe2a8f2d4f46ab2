import asyncio
import uuid

from opora_intake.adapters.ticket_ids import TicketIds


class TestTicketNumbers:
    async def test_two_replicas_never_hand_out_the_same_number(self, js):
        first, second = TicketIds(js, block_size=7), TicketIds(js, block_size=5)
        ids = await asyncio.gather(*[a.next_id() for a in (first, second) * 150])
        assert len(set(ids)) == 300
        assert all(i.isdigit() and not i.startswith("0") for i in ids)

    async def test_a_channel_id_maps_to_one_ticket(self, js):
        first, second = TicketIds(js), TicketIds(js)
        ref = f"email:<{uuid.uuid4()}@romashka.ru>"
        results = await asyncio.gather(first.claim(ref), second.claim(ref), first.claim(ref))
        assert len({ticket for ticket, _ in results}) == 1
        assert sorted(new for _, new in results) == [False, False, True]
