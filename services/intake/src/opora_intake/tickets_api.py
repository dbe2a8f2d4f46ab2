"""Tickets over the API: list them (from the ticket index) and act on one.

Lists read the ``opora_tickets`` index (a projection the intake's indexer keeps; it may trail
the stream by a moment) and only ever the tenants the token may read: a ``tenant`` filter
naming another tenant gives an empty page, exactly like a tenant without tickets, so a token
learns nothing about tenants it may not see.

Actions become events with the token as actor (``{kind: token, id: tok_...}``): a
``ticket.updated`` with the change, or a ``ticket.assigned`` (rule ``manual``) for a
reassignment. A ticket of another tenant answers 404 like a missing one. Impossible transitions
answer 409 (resolving a resolved ticket, reopening an open one, a second approval decision).
With an ``Idempotency-Key`` the event id is derived from it, so a retried request is stored once.
"""

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, status

from opora_intake.api import RuntimeDep, TokenDep, forbidden, invalid, unavailable
from opora_intake.api_models import (
    Problem,
    TicketAction,
    TicketEventAccepted,
    TicketEventCreate,
    TicketPage,
)
from opora_intake.approvals import _decision
from opora_intake.errors import NATS_UNAVAILABLE
from opora_intake.runtime import IntakeRuntime
from opora_shared.errors import ContractError, TicketNotFoundError
from opora_shared.events import Actor, Event, TicketAssigned, TicketUpdated, derive_id
from opora_shared.nats.broker import jetstream
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.ticket_index import OPEN_STATUSES, TicketIndex, select
from opora_shared.tickets import TicketView, fold
from opora_shared.tokens import TokenRecord, TokenScope
from opora_shared.types import TenantId
from opora_shared.vocabulary import Priority, Scope, TicketChange, TicketStatus

log = logging.getLogger(__name__)

router = APIRouter(tags=["tickets"])

_TICKET_ID = r"^[1-9][0-9]{0,11}$"

CHANGES: dict[TicketAction, TicketChange] = {
    TicketAction.ACKNOWLEDGE: TicketChange.ACKNOWLEDGED,
    TicketAction.REPLY: TicketChange.REPLIED,
    TicketAction.WAIT_ON_CLIENT: TicketChange.WAITING_ON_CLIENT,
    TicketAction.RESOLVE: TicketChange.RESOLVED,
    TicketAction.REOPEN: TicketChange.REOPENED,
    TicketAction.CHANGE_PRIORITY: TicketChange.PRIORITY_CHANGED,
    TicketAction.APPROVE: TicketChange.APPROVED,
    TicketAction.DECLINE: TicketChange.DECLINED,
}
"""The ticket.updated change of every action but reassign (a ticket.assigned)."""


@router.get(
    "/v1/tickets",
    response_model=TicketPage,
    responses={
        401: {"model": Problem},
        403: {"model": Problem, "description": "the token has no tickets:read scope"},
        503: {"model": Problem},
    },
)
async def list_tickets(
    runtime: RuntimeDep,
    token: TokenDep,
    status_: Annotated[
        list[TicketStatus],
        Query(
            alias="status",
            description="repeatable; open means every status but resolved",
        ),
    ] = [],  # noqa: B006 - FastAPI copies defaults
    tenant: Annotated[
        TenantId | None, Query(description="one tenant; another tenant's gives an empty page")
    ] = None,
    priority: Annotated[list[Priority], Query(description="repeatable")] = [],  # noqa: B006
    scope: Annotated[list[Scope], Query(description="repeatable")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=_TICKET_ID, description="next_cursor of the previous page"),
    ] = None,
) -> TicketPage:
    """Tickets of the token's tenants, newest first, a page at a time (from the ticket index).

    A ``tenant`` the token may not read gives an empty page, like a tenant without tickets.
    """
    readable = token.tenants_for(TokenScope.TICKETS_READ)
    if readable is not None and not readable:
        raise forbidden("the token has no tickets:read scope")
    tenants: list[str] | None
    if tenant is not None:
        if readable is not None and tenant not in readable:
            return TicketPage(items=[], next_cursor=None)
        tenants = [tenant]
    else:
        tenants = None if readable is None else sorted(readable)
    statuses: set[TicketStatus] = {s for s in status_ if s is not TicketStatus.OPEN}
    if TicketStatus.OPEN in status_:
        statuses |= set(OPEN_STATUSES)
    try:
        summaries = await TicketIndex(jetstream(runtime.broker)).summaries(tenants)
    except NATS_UNAVAILABLE as exc:
        raise unavailable("the ticket index is unavailable") from exc
    page, next_cursor = select(
        summaries,
        status=statuses,
        priority=priority,
        scope=scope,
        before=int(cursor) if cursor else None,
        limit=limit,
    )
    return TicketPage(items=page, next_cursor=next_cursor)


@router.post(
    "/v1/tickets/{ticket_id}/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TicketEventAccepted,
    responses={
        401: {"model": Problem},
        403: {"model": Problem, "description": "the token may read the ticket, not act on it"},
        404: {"model": Problem, "description": "no such ticket in the token's tenants"},
        409: {"model": Problem, "description": "impossible now; the answer says why"},
        422: {"description": "a field is invalid or missing for the action; the answer names it"},
        503: {"model": Problem},
    },
)
async def act_on_ticket(
    ticket_id: Annotated[str, Path(max_length=64, description="the ticket number")],
    body: TicketEventCreate,
    runtime: RuntimeDep,
    token: TokenDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TicketEventAccepted:
    """Act on a ticket: acknowledge, reply, wait on the client, resolve, reopen, change the
    priority, reassign, approve or decline; each becomes an event with the token as actor.

    ``reply`` needs ``text`` (mailed to the client by the notifier), ``change_priority`` a
    ``priority``, ``reassign`` an ``assignee`` from the team file. ``time_spent_minutes`` may
    go with any action but reassign. Resending with the same ``Idempotency-Key`` stores nothing
    new and answers ``duplicate: true``.
    """
    _check_fields(body)
    events, view = await _ticket(runtime, token, ticket_id)
    event_id = (
        derive_id("api", view.tenant, view.id, token.id, idempotency_key)
        if idempotency_key
        else uuid.uuid4()
    )
    stored = next((e for e in events if e.event_id == event_id), None)
    if stored is not None:
        return _accepted(stored, duplicate=True)
    actor = Actor(kind="token", id=token.id)
    if body.action is TicketAction.REASSIGN:
        event: Event = _reassignment(runtime, view, body, event_id, token)
    else:
        event = _update(runtime, view, events, body, event_id, actor)
    try:
        ack = await publish_event(runtime.broker, event)
        decided = (
            _decision(await ticket_events(jetstream(runtime.broker), view.id, tenant=view.tenant))
            if ack.duplicate and body.action in (TicketAction.APPROVE, TicketAction.DECLINE)
            else None
        )
    except NATS_UNAVAILABLE as exc:
        log.warning("ticket event not stored: %s", type(exc).__name__)
        raise unavailable("the ticket store is unavailable") from exc
    if decided is not None:  # an approval link (or another request) decided first
        raise _conflict(f"ticket #{view.id} already has a decision: {decided.change.value}")
    log.info("ticket %s: %s by token %s", view.id, body.action.value, token.id)
    return _accepted(event, duplicate=bool(ack.duplicate))


def _check_fields(body: TicketEventCreate) -> None:
    """422 naming the field an action needs, or one it does not take."""
    action = body.action
    if action is TicketAction.REPLY and not body.text:
        raise invalid("body", "text", msg="reply needs the text for the client")
    needs = {TicketAction.CHANGE_PRIORITY: "priority", TicketAction.REASSIGN: "assignee"}
    for field in ("priority", "assignee"):
        given = getattr(body, field) is not None
        if needs.get(action) == field and not given:
            raise invalid("body", field, msg=f"{action.value} needs {field}")
        if needs.get(action) != field and given:
            raise invalid("body", field, msg=f"{field} only goes with {_needing(field)}")
    if action is TicketAction.REASSIGN and body.time_spent_minutes is not None:
        raise invalid("body", "time_spent_minutes", msg="time spent does not go with reassign")


def _needing(field: str) -> str:
    return "change_priority" if field == "priority" else "reassign"


async def _ticket(
    runtime: IntakeRuntime, token: TokenRecord, ticket_id: str
) -> tuple[list[Event], TicketView]:
    """The ticket's events and view; 404 when missing or another tenant's, 403 when read-only."""
    not_found = HTTPException(status.HTTP_404_NOT_FOUND, f"no ticket {ticket_id[:64]}")
    if not (ticket_id.isascii() and ticket_id.isdigit() and not ticket_id.startswith("0")):
        raise not_found
    if len(ticket_id) > 12:
        raise not_found
    try:
        events = await ticket_events(jetstream(runtime.broker), ticket_id)
    except NATS_UNAVAILABLE as exc:
        raise unavailable("the ticket store is unavailable") from exc
    if not events:
        raise not_found
    tenant = events[0].tenant
    if not token.allows(TokenScope.TICKETS_WRITE, tenant):
        if token.allows(TokenScope.TICKETS_READ, tenant):
            raise forbidden("the token may read this ticket but not act on it (tickets:write)")
        raise not_found
    try:
        return events, fold(events)
    except TicketNotFoundError:
        raise not_found from None


def _conflict(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail)


def _update(
    runtime: IntakeRuntime,
    view: TicketView,
    events: list[Event],
    body: TicketEventCreate,
    event_id: uuid.UUID,
    actor: Actor,
) -> TicketUpdated:
    """The ticket.updated of an action, or 409 when the ticket's state forbids it."""
    action, resolved = body.action, view.status is TicketStatus.RESOLVED
    if action in (TicketAction.APPROVE, TicketAction.DECLINE):
        decided = _decision(events)
        if decided is not None:
            raise _conflict(f"ticket #{view.id} already has a decision: {decided.change.value}")
        # the ticket, not the decision, as the approval links do: racing decisions store one
        event_id = derive_id(view.tenant, view.id, "approval")
    elif action is TicketAction.RESOLVE and resolved:
        raise _conflict(f"ticket #{view.id} is already resolved")
    elif action is TicketAction.REOPEN and not resolved:
        raise _conflict(f"ticket #{view.id} is not resolved (it is {view.status.value})")
    elif action is TicketAction.CHANGE_PRIORITY:
        if view.classification is None:
            raise _conflict(f"ticket #{view.id} is not classified yet; try again in a minute")
        if view.classification.priority is body.priority:
            raise _conflict(f"ticket #{view.id} is already {view.classification.priority}")
    elif resolved and action in (
        TicketAction.ACKNOWLEDGE,
        TicketAction.REPLY,
        TicketAction.WAIT_ON_CLIENT,
    ):
        raise _conflict(f"ticket #{view.id} is resolved; reopen it first")
    return TicketUpdated(
        event_id=event_id,
        occurred_at=runtime.clock(),
        tenant=view.tenant,
        ticket_id=view.id,
        change=CHANGES[action],
        actor=actor,
        text=body.text,
        priority=body.priority,
        time_spent_minutes=body.time_spent_minutes,
    )


def _reassignment(
    runtime: IntakeRuntime,
    view: TicketView,
    body: TicketEventCreate,
    event_id: uuid.UUID,
    token: TokenRecord,
) -> TicketAssigned:
    """A manual ticket.assigned to an engineer of the team file (422 naming an unknown one)."""
    try:
        team = runtime.contracts.team
    except ContractError:
        raise _conflict("no team file is loaded; nobody can be assigned") from None
    wanted = (body.assignee or "").strip().lower()
    found = team.member_by_email(wanted) if "@" in wanted else team.engineer(wanted)
    engineer = team.engineer(found.id) if found is not None else None
    if engineer is None:
        known = ", ".join(e.id for e in team.engineers)
        raise invalid("body", "assignee", msg=f"no engineer {wanted[:64]!r} in the team ({known})")
    if view.classification is None:
        raise _conflict(f"ticket #{view.id} is not classified yet; try again in a minute")
    previous = next(
        (
            str(e.get("assignee"))
            for e in reversed(view.events)
            if e.get("type") == TicketAssigned.event_type()
        ),
        None,
    )
    if previous == engineer.id:
        raise _conflict(f"ticket #{view.id} is already assigned to {engineer.id}")
    reasons = [f"assigned over the API by token {token.id}"]
    if body.text:
        reasons.append(body.text[:1000])
    return TicketAssigned(
        event_id=event_id,
        occurred_at=runtime.clock(),
        tenant=view.tenant,
        ticket_id=view.id,
        assignee=engineer.id,
        assignee_email=engineer.email,
        team=team.team_for(view.classification.category),
        priority=view.classification.priority,
        rule="manual",
        previous_assignee=previous,
        reasons=tuple(reasons),
    )


def _accepted(event: Event, *, duplicate: bool) -> TicketEventAccepted:
    change = event.change.value if isinstance(event, TicketUpdated) else None
    assigned = isinstance(event, TicketAssigned)
    return TicketEventAccepted(
        ticket_id=event.ticket_id,
        event_id=str(event.event_id),
        event_type="ticket.assigned" if assigned else "ticket.updated",
        change=change,
        duplicate=duplicate,
    )
