"""Tickets over the API, real HTTP into a real NATS: lists from the ticket index (paged, filtered,
tenant-isolated) and actions that become events with the token as actor."""

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from opora_intake.indexer import DURABLE
from opora_shared import subjects
from opora_shared.events import Actor, TicketAssigned, TicketUpdated
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.testing.factories import make_ticket_classified, make_ticket_received
from opora_shared.testing.waiting import wait_for
from opora_shared.tokens import token_id, token_key
from opora_shared.vocabulary import Category, Priority, Scope, TicketChange

from .test_api_tokens import Intake, bearer, serve_intake

WRITE = ("tickets:read", "tickets:write")


@pytest.fixture
async def intake(nats_url, tmp_path, js) -> AsyncIterator[Intake]:
    async with serve_intake(nats_url, tmp_path, js) as running:
        # The index's durable consumer first works off every event earlier tests of the session
        # left on this nats-server (thousands after the e2e tests): wait until it has taken
        # them all, so that a test's own deadline covers its own tickets only. (Not for its
        # acknowledgements: a batch an earlier test's intake took and never acknowledged is
        # only redelivered after the 30 s ack wait, and blocks nothing meanwhile.)
        await wait_for(
            lambda: _index_caught_up(js), timeout=120, interval=0.2, message="index caught up"
        )
        yield running


async def _index_caught_up(js) -> bool:
    info = await js.consumer_info(subjects.EVENTS_STREAM, DURABLE)
    return info.num_pending == 0


INDEX_WAIT_S = 60
"""How long a test waits for its tickets in the index. Alone it takes about a second; late in
a full session the stream holds the e2e and fuzz tests' events, and every history read scans
it (fresh clones of this suite have taken more than 20 s)."""

POLL_S = 0.25
"""Polls of the list endpoint while the index catches up: 4 a second stay under the token's
refill rate (10 a second), so a slow catch-up (a suite's backlog) never ends in a 429."""


def unique_tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def publish(intake: Intake, *events) -> None:
    for event in events:
        await publish_event(intake.app.state.runtime.broker, event)


async def ticket(intake: Intake, tenant="romashka", ticket_id=None, **classified) -> str:
    """A received ticket, classified unless ``classified`` is None."""
    ticket_id = ticket_id or str(random.randint(10**10, 10**11))  # noqa: S311
    received = make_ticket_received(tenant=tenant, ticket_id=ticket_id)
    await publish(intake, received)
    if classified.pop("unclassified", False) is False:
        await publish(
            intake, make_ticket_classified(tenant=tenant, ticket_id=ticket_id, **classified)
        )
    return ticket_id


async def page(intake: Intake, token: str, **params) -> dict:
    async with intake.http() as http:
        response = await http.get("/v1/tickets", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


class TestListTickets:
    async def test_pages_newest_first_with_a_cursor(self, intake):
        tenant = unique_tenant()
        ids = [str(10**11 + 5000 + i) for i in range(5)]
        for ticket_id in ids:
            await ticket(intake, tenant, ticket_id, unclassified=True)
        token = await intake.token(tenant)
        await wait_for(
            lambda: _count(intake, token, 5),
            timeout=INDEX_WAIT_S,
            interval=POLL_S,
            message="the index has the tickets",
        )
        first = await page(intake, token, limit=2)
        second = await page(intake, token, limit=2, cursor=first["next_cursor"])
        last = await page(intake, token, limit=2, cursor=second["next_cursor"])
        assert [t["id"] for t in first["items"]] == [ids[4], ids[3]]
        assert [t["id"] for t in second["items"]] == [ids[2], ids[1]]
        assert [t["id"] for t in last["items"]] == [ids[0]]
        assert last["next_cursor"] is None
        assert first["items"][0]["tenant"] == tenant

    async def test_filters_by_status_priority_and_scope(self, intake):
        tenant = unique_tenant()
        fresh = await ticket(intake, tenant, unclassified=True)
        urgent = await ticket(intake, tenant, priority=Priority.P1)
        billable = await ticket(intake, tenant, scope=Scope.BILLABLE)
        done = await ticket(intake, tenant)
        await publish(intake, _updated(tenant, done, TicketChange.RESOLVED))
        token = await intake.token(tenant)
        await wait_for(
            lambda: _status_of(intake, token, done, "resolved"),
            timeout=INDEX_WAIT_S,
            interval=POLL_S,
            message="indexed",
        )

        def ids(result: dict) -> set[str]:
            return {t["id"] for t in result["items"]}

        assert ids(await page(intake, token, status="new")) == {fresh}
        assert ids(await page(intake, token, status="open")) == {fresh, urgent, billable}
        assert ids(await page(intake, token, status="resolved")) == {done}
        assert ids(await page(intake, token, priority="P1")) == {urgent}
        assert ids(await page(intake, token, scope="billable")) == {billable}
        assert ids(await page(intake, token, status=["new", "resolved"])) == {fresh, done}

    async def test_a_romashka_token_never_sees_vector_tickets(self, intake):
        theirs = await ticket(intake, "vector")
        mine = await ticket(intake, "romashka")
        romashka = await intake.token("romashka")
        staff = await intake.token("*")
        await wait_for(
            lambda: _has(intake, staff, theirs, "vector"),
            timeout=INDEX_WAIT_S,
            interval=POLL_S,
            message="index",
        )
        await wait_for(
            lambda: _has(intake, staff, mine, "romashka"),
            timeout=INDEX_WAIT_S,
            interval=POLL_S,
            message="index",
        )
        everything = await page(intake, romashka, limit=200)
        asked = await page(intake, romashka, tenant="vector", limit=200)
        assert all(t["tenant"] == "romashka" for t in everything["items"])
        assert asked == {"items": [], "next_cursor": None}
        assert await _has(intake, romashka, mine, "romashka")

    async def test_needs_tickets_read_and_valid_filters(self, intake):
        writer = await intake.token("romashka", scopes=("events:write",))
        async with intake.http() as http:
            refused = await http.get("/v1/tickets", headers=bearer(writer))
            bad = await http.get(
                "/v1/tickets",
                params={"status": "closed", "cursor": "01", "limit": 0},
                headers=bearer(await intake.token("romashka")),
            )
        assert refused.status_code == 403
        assert bad.status_code == 422
        named = {str(part) for err in bad.json()["detail"] for part in err["loc"]}
        assert {"status", "cursor", "limit"} <= named


async def _count(intake: Intake, token: str, n: int) -> bool:
    return len((await page(intake, token, limit=200))["items"]) >= n


async def _status_of(intake: Intake, token: str, ticket_id: str, status: str) -> bool:
    items = (await page(intake, token, limit=200))["items"]
    return any(t["id"] == ticket_id and t["status"] == status for t in items)


async def _has(intake: Intake, token: str, ticket_id: str, tenant: str) -> bool:
    items = (await page(intake, token, tenant=tenant, limit=200))["items"]
    return any(t["id"] == ticket_id for t in items)


def _updated(tenant: str, ticket_id: str, change: TicketChange) -> TicketUpdated:
    return TicketUpdated(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        tenant=tenant,
        ticket_id=ticket_id,
        change=change,
        actor=Actor(kind="engineer", id="maria"),
    )


async def act(intake: Intake, ticket_id: str, token: str, headers=None, **body):
    async with intake.http() as http:
        return await http.post(
            f"/v1/tickets/{ticket_id}/events",
            json=body,
            headers={**bearer(token), **(headers or {})},
        )


async def last_update(js, ticket_id: str) -> TicketUpdated | TicketAssigned:
    events = await ticket_events(js, ticket_id)
    return next(e for e in reversed(events) if isinstance(e, TicketUpdated | TicketAssigned))


def actor_id(token: str) -> str:
    return token_id(token_key(token))


class TestTicketEvents:
    @pytest.mark.parametrize(
        ("body", "change"),
        [
            ({"action": "acknowledge", "time_spent_minutes": 5}, TicketChange.ACKNOWLEDGED),
            ({"action": "reply", "text": "Перезагрузите принтер"}, TicketChange.REPLIED),
            ({"action": "wait_on_client", "text": "Пришлите фото"}, TicketChange.WAITING_ON_CLIENT),
            ({"action": "resolve", "text": "Заменили ролик"}, TicketChange.RESOLVED),
            ({"action": "change_priority", "priority": "P1"}, TicketChange.PRIORITY_CHANGED),
            ({"action": "approve"}, TicketChange.APPROVED),
            ({"action": "decline", "text": "Не сейчас"}, TicketChange.DECLINED),
        ],
    )
    async def test_each_action_is_a_ticket_updated_with_the_token_as_actor(
        self, intake, js, body, change
    ):
        ticket_id = await ticket(intake)
        token = await intake.token("romashka", scopes=WRITE)
        response = await act(intake, ticket_id, token, **body)
        assert response.status_code == 202, response.text
        assert response.json()["change"] == change.value
        event = await last_update(js, ticket_id)
        assert isinstance(event, TicketUpdated)
        assert event.change is change
        assert (event.actor.kind, event.actor.id) == ("token", actor_id(token))
        assert str(event.event_id) == response.json()["event_id"]
        assert event.text == body.get("text")
        assert event.time_spent_minutes == body.get("time_spent_minutes")
        if change is TicketChange.PRIORITY_CHANGED:
            assert event.priority is Priority.P1

    async def test_reassign_is_a_manual_ticket_assigned(self, intake, js):
        ticket_id = await ticket(intake, category=Category.PRINTING)
        token = await intake.token("*", scopes=WRITE)
        response = await act(intake, ticket_id, token, action="reassign", assignee="oleg")
        again = await act(intake, ticket_id, token, action="reassign", assignee="oleg@opora.local")
        unknown = await act(intake, ticket_id, token, action="reassign", assignee="ivan")
        assert response.status_code == 202, response.text
        assert response.json()["event_type"] == "ticket.assigned"
        event = await last_update(js, ticket_id)
        assert isinstance(event, TicketAssigned)
        assert (event.assignee, event.rule, event.assignee_email) == (
            "oleg",
            "manual",
            "oleg@opora.local",
        )
        assert again.status_code == 409
        assert unknown.status_code == 422
        assert unknown.json()["detail"][0]["loc"] == ["body", "assignee"]

    async def test_impossible_transitions_are_409(self, intake):
        ticket_id = await ticket(intake)
        token = await intake.token("romashka", scopes=WRITE)
        reopen_open = await act(intake, ticket_id, token, action="reopen")
        resolved = await act(intake, ticket_id, token, action="resolve")
        twice = await act(intake, ticket_id, token, action="resolve")
        reply = await act(intake, ticket_id, token, action="reply", text="ещё")
        reopened = await act(intake, ticket_id, token, action="reopen")
        same = await act(intake, ticket_id, token, action="change_priority", priority="P3")
        approve = await act(intake, ticket_id, token, action="approve")
        decline = await act(intake, ticket_id, token, action="decline")
        assert [
            r.status_code
            for r in (reopen_open, resolved, twice, reply, reopened, same, approve, decline)
        ] == [409, 202, 409, 409, 202, 409, 202, 409]
        assert "approved" in decline.json()["detail"]

    async def test_another_tenants_ticket_is_404_like_a_missing_one(self, intake):
        theirs = await ticket(intake, "vector")
        romashka = await intake.token("romashka", scopes=WRITE)
        reader = await intake.token("vector", scopes=("tickets:read",))
        hidden = await act(intake, theirs, romashka, action="acknowledge")
        missing = await act(intake, "999999999997", romashka, action="acknowledge")
        junk = await act(intake, "0x12", romashka, action="acknowledge")
        read_only = await act(intake, theirs, reader, action="acknowledge")
        assert hidden.status_code == missing.status_code == junk.status_code == 404
        assert hidden.json()["detail"].startswith("no ticket")
        assert read_only.status_code == 403

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"action": "reply"}, "text"),
            ({"action": "change_priority"}, "priority"),
            ({"action": "acknowledge", "priority": "P1"}, "priority"),
            ({"action": "reassign"}, "assignee"),
            ({"action": "reassign", "assignee": "maria", "time_spent_minutes": 3},
             "time_spent_minutes"),
            ({"action": "close"}, "action"),
            ({"action": "resolve", "time_spent_minutes": -1}, "time_spent_minutes"),
            ({"action": "resolve", "colour": "red"}, "colour"),
        ],
    )  # fmt: skip
    async def test_bad_input_is_422_naming_the_field(self, intake, body, field):
        ticket_id = await ticket(intake)
        token = await intake.token("romashka", scopes=WRITE)
        response = await act(intake, ticket_id, token, **body)
        assert response.status_code == 422
        assert field in {str(part) for err in response.json()["detail"] for part in err["loc"]}

    async def test_an_idempotency_key_stores_one_event(self, intake, js):
        ticket_id = await ticket(intake)
        token = await intake.token("romashka", scopes=WRITE)
        key = {"Idempotency-Key": str(uuid.uuid4())}
        first = await act(intake, ticket_id, token, key, action="reply", text="Готово?")
        again = await act(intake, ticket_id, token, key, action="reply", text="Готово?")
        assert first.status_code == again.status_code == 202
        assert first.json()["event_id"] == again.json()["event_id"]
        assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
        replies = [
            e
            for e in await ticket_events(js, ticket_id)
            if isinstance(e, TicketUpdated) and e.change is TicketChange.REPLIED
        ]
        assert len(replies) == 1
