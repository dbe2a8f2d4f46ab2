"""The intake's HTTP routes: submit a ticket, read one back, health and readiness."""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from nats.errors import Error as NatsError

from opora_intake.api_models import Problem, TicketAccepted, TicketCreate
from opora_intake.runtime import IntakeRuntime
from opora_shared.errors import NotReadyError
from opora_shared.events import Requester, TicketReceived, derive_id
from opora_shared.nats.broker import jetstream
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.nats.streams import check_ready
from opora_shared.tickets import TicketView, fold
from opora_shared.tokens import TokenRecord, lookup_token
from opora_shared.vocabulary import Channel

log = logging.getLogger(__name__)

router = APIRouter()
_bearer = HTTPBearer(auto_error=False, description="an API token (var/admin.token for admin)")


async def get_runtime(request: Request) -> IntakeRuntime:
    """The runtime the composition root put on the app."""
    runtime: IntakeRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[IntakeRuntime, Depends(get_runtime)]


def _unavailable(what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=f"{what}; nothing was stored, retry later",
        headers={"Retry-After": "5"},
    )


async def get_token(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenRecord:
    """The rights of the bearer token; 401 without a valid one."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "a bearer token is required", headers=challenge
        )
    try:
        record = await lookup_token(jetstream(runtime.broker), credentials.credentials)
    except (NatsError, TimeoutError, NotReadyError) as exc:
        raise _unavailable("token store unavailable") from exc
    if record is None or record.revoked:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown or revoked token", headers=challenge
        )
    return record


TokenDep = Annotated[TokenRecord, Depends(get_token)]

unavailable = _unavailable
"""503 with Retry-After: NATS did not answer, nothing was stored."""

bearer = _bearer
"""The bearer scheme, for routes that take a token in another way too (PagerDuty)."""


async def token_of(runtime: IntakeRuntime, presented: str) -> TokenRecord:
    """The rights of a token presented some other way than the header; 401 when unknown."""
    try:
        record = await lookup_token(jetstream(runtime.broker), presented)
    except (NatsError, TimeoutError, NotReadyError) as exc:
        raise _unavailable("token store unavailable") from exc
    if record is None or record.revoked:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked token")
    return record


def invalid(*loc: str | int, msg: str) -> RequestValidationError:
    """A 422 naming the field, in FastAPI's own shape (``detail: [{loc, msg, type}]``)."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg, "input": None}])


def forbidden(detail: str) -> HTTPException:
    """A 403: the token is valid but may not do this."""
    return HTTPException(status.HTTP_403_FORBIDDEN, detail)


@router.post(
    "/v1/tickets",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TicketAccepted,
    responses={
        422: {"description": "a field is invalid; the answer names it"},
        503: {"model": Problem, "description": "NATS unavailable; retry later"},
    },
    tags=["tickets"],
)
async def create_ticket(
    ticket: TicketCreate,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TicketAccepted:
    """Submit a ticket (the web-request channel; no token needed, like sending an email).

    The tenant comes from the sender's address through the contracts; an unknown sender still
    gets a ticket, for review. Answers once JetStream has stored the ticket. Resending with the
    same ``Idempotency-Key`` returns the first ticket's number instead of making another.
    """
    tenant = runtime.contracts.book.tenant_for(ticket.from_)
    source_ref = f"web:{ticket.from_}:{idempotency_key}" if idempotency_key else None
    try:
        if source_ref:
            ticket_id, new = await runtime.ids.claim(source_ref)
        else:
            ticket_id, new = await runtime.ids.next_id(), True
        event = TicketReceived(
            event_id=derive_id(ticket_id, TicketReceived.event_type()),
            occurred_at=runtime.clock(),
            tenant=tenant,
            ticket_id=ticket_id,
            channel=Channel.WEB,
            requester=Requester(email=ticket.from_, name=ticket.name),
            subject=ticket.subject,
            body=ticket.body,
            source_ref=source_ref,
        )
        ack = await publish_event(runtime.received, event)
    except (NatsError, TimeoutError, NotReadyError) as exc:
        log.warning("ticket not stored: %s", type(exc).__name__)
        raise _unavailable("the ticket store is unavailable") from exc
    # A resubmission whose first publish was lost is published now; its id is deterministic,
    # so one that was stored is deduplicated by JetStream.
    if new and not ack.duplicate:
        runtime.metrics.received.labels(Channel.WEB, tenant).inc()
        log.info("ticket %s received (web, tenant %s)", ticket_id, tenant)
    return TicketAccepted(id=ticket_id, duplicate=not new)


@router.get(
    "/v1/tickets/{ticket_id}",
    response_model=TicketView,
    responses={401: {"model": Problem}, 404: {"model": Problem}, 503: {"model": Problem}},
    tags=["tickets"],
)
async def read_ticket(
    ticket_id: Annotated[str, Path(description="the ticket number")],
    runtime: RuntimeDep,
    token: TokenDep,
) -> TicketView:
    """A ticket folded from its events: status, classification, SLA, notifications, history.

    A ticket of a tenant the token may not see answers 404, exactly like a missing one.
    """
    not_found = HTTPException(status.HTTP_404_NOT_FOUND, f"no ticket {ticket_id}")
    if not _is_ticket_id(ticket_id):
        raise not_found
    try:
        events = await ticket_events(jetstream(runtime.broker), ticket_id)
    except (NatsError, TimeoutError, NotReadyError) as exc:
        raise _unavailable("the ticket store is unavailable") from exc
    if not events or not token.allows("tickets:read", events[0].tenant):
        raise not_found
    return fold(events)


def _is_ticket_id(value: str) -> bool:
    return value.isascii() and value.isdigit() and not value.startswith("0") and len(value) <= 12


@router.get("/healthz", tags=["ops"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"], responses={503: {"model": Problem}})
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Readiness: connected to NATS and every stream and bucket exists."""
    if not runtime.broker.connection.is_connected:
        return JSONResponse({"status": "not ready", "detail": "NATS disconnected"}, 503)
    try:
        missing = await check_ready(jetstream(runtime.broker))
    except (NatsError, TimeoutError) as exc:
        return JSONResponse({"status": "not ready", "detail": type(exc).__name__}, 503)
    if missing:
        return JSONResponse({"status": "not ready", "detail": f"missing {missing}"}, 503)
    return JSONResponse({"status": "ready"})
