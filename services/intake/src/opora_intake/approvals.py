"""Approval links: the client's approver approves or declines billable work from the mail.

The notifier mails two links, ``{public_url}/v1/approvals/{token}``, one per decision; the token
is signed and expiring (``opora_shared.approvals``). ``GET`` shows what the link will do and a
button, and changes nothing: mail scanners and link previews fetch links on their own. ``POST``
(the button) records the decision as a ``ticket.updated`` event (``approved``/``declined``).

One decision per ticket: the event id is derived from the ticket alone, not the decision, so a
double click, or an approve and a decline racing, store one event (JetStream deduplicates); a
later click finds the decision in the ticket's history and answers 409 naming it.
Answers are HTML, or JSON for ``Accept: application/json``. Tokens are never logged.
"""

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from nats.errors import Error as NatsError

from opora_intake.api import RuntimeDep
from opora_intake.api_models import ApprovalRead, Problem
from opora_intake.approval_pages import (
    confirm_page,
    decided_page,
    error_page,
    recorded_page,
    words,
)
from opora_intake.runtime import IntakeRuntime
from opora_shared.approvals import ApprovalClaim, ApprovalLinkError
from opora_shared.contracts import Contract
from opora_shared.errors import NotReadyError
from opora_shared.events import (
    Actor,
    Event,
    TicketClassified,
    TicketReceived,
    TicketUpdated,
    derive_id,
)
from opora_shared.nats.broker import jetstream
from opora_shared.nats.history import ticket_events
from opora_shared.nats.publish import publish_event
from opora_shared.vocabulary import Language, Scope, TicketChange

log = logging.getLogger(__name__)

router = APIRouter(tags=["approvals"])

DECISIONS = (TicketChange.APPROVED, TicketChange.DECLINED)

# The token is in the URL: keep it out of caches, Referer headers and search engines.
SAFE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}

TokenPath = Annotated[
    str, Path(min_length=1, max_length=2048, description="the signed token of the approval mail")
]

_HTML: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Problem,
        "content": _HTML,
        "description": "the link is altered, not ours or expired; the answer says which",
    },
    403: {
        "model": Problem,
        "content": _HTML,
        "description": "the link's approver is no longer the contract's approver",
    },
    404: {"model": Problem, "content": _HTML, "description": "no such ticket in that tenant"},
    503: {"model": Problem, "content": _HTML, "description": "NATS unavailable; retry later"},
}


class _Refusal(Exception):
    """An answer other than the page: status, why, and the page's language if known."""

    def __init__(
        self,
        status_code: int,
        key: str,
        language: Language | None,
        *,
        message: str | None = None,
        **values: str,
    ) -> None:
        self.status_code = status_code
        self.message = message or words(Language.EN, key, **values)
        """For JSON clients: English, like every other API error."""
        self.page_message = (
            words(language, key, **values) if language is not None and key else self.message
        )
        """For people: in the tenant's language when it is known."""
        super().__init__(self.message)
        self.language = language


@dataclass(frozen=True, slots=True)
class _Link:
    """A verified link and its ticket."""

    claim: ApprovalClaim
    contract: Contract
    received: TicketReceived
    decided: TicketUpdated | None
    scope: Scope | None

    @property
    def language(self) -> Language:
        return self.contract.language

    def read(self, state: str, decided: TicketUpdated | None) -> ApprovalRead:
        return ApprovalRead.model_validate(
            {
                "ticket_id": self.claim.ticket_id,
                "subject": self.received.subject,
                "link_decision": self.claim.decision,
                "state": state,
                "decision": decided.change.value if decided else None,
                "decided_at": decided.occurred_at if decided else None,
            }
        )


def _decision(events: list[Event]) -> TicketUpdated | None:
    """The ticket's decision: the first approved/declined (later ones cannot be recorded)."""
    return next((e for e in events if isinstance(e, TicketUpdated) and e.change in DECISIONS), None)


async def _open(token: str, runtime: IntakeRuntime) -> _Link:
    """Verify the link and find its ticket; _Refusal saying why not."""
    if runtime.signer is None:
        raise _Refusal(503, "unavailable", None)
    try:
        claim = runtime.signer.verify(token)
    except ApprovalLinkError as exc:
        runtime.metrics.approvals.labels("unknown", "invalid").inc()
        raise _Refusal(status.HTTP_400_BAD_REQUEST, "", None, message=str(exc)) from None
    contract = runtime.contracts.book.get(claim.tenant)
    language = contract.language if contract else None
    try:
        events = await ticket_events(
            jetstream(runtime.broker), claim.ticket_id, tenant=claim.tenant
        )
    except (NatsError, TimeoutError, NotReadyError) as exc:
        log.warning("approval not read: %s", type(exc).__name__)
        raise _Refusal(503, "unavailable", language) from exc
    received = next((e for e in events if isinstance(e, TicketReceived)), None)
    if contract is None or received is None:
        raise _Refusal(status.HTTP_404_NOT_FOUND, "not_found", language, ticket=claim.ticket_id)
    if contract.approver.lower() != claim.approver.lower():
        runtime.metrics.approvals.labels(claim.tenant, "invalid").inc()
        raise _Refusal(status.HTTP_403_FORBIDDEN, "approver_changed", contract.language)
    scope = next((e.scope for e in reversed(events) if isinstance(e, TicketClassified)), None)
    return _Link(claim, contract, received, _decision(events), scope)


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return "application/json" in accept and "text/html" not in accept


def _refused(request: Request, refusal: _Refusal) -> Response:
    headers = dict(SAFE_HEADERS)
    if refusal.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
        headers["Retry-After"] = "5"
    if _wants_json(request):
        return JSONResponse({"detail": refusal.message}, refusal.status_code, headers=headers)
    page = error_page(refusal.language, refusal.page_message)
    return HTMLResponse(page, refusal.status_code, headers=headers)


def _answer(
    request: Request, link: _Link, state: str, decided: TicketUpdated | None, code: int = 200
) -> Response:
    if _wants_json(request):
        body = link.read(state, decided).model_dump(mode="json")
        return JSONResponse(body, code, headers=SAFE_HEADERS)
    subject, ticket_id = link.received.subject, link.claim.ticket_id
    if state == "recorded" and decided is not None:
        page = recorded_page(
            link.language, ticket_id=ticket_id, subject=subject, decision=decided.change
        )
    elif decided is not None:
        page = decided_page(
            link.language,
            ticket_id=ticket_id,
            subject=subject,
            decision=decided.change,
            decided_at=decided.occurred_at,
            timezone=link.contract.calendar.timezone,
        )
    else:
        page = confirm_page(
            link.language,
            ticket_id=ticket_id,
            subject=subject,
            scope=link.scope,
            decision=link.claim.decision,
            # relative: resolves to this very URL, whatever prefix a proxy adds
            action="./" + request.path_params["token"],
        )
    return HTMLResponse(page, code, headers=SAFE_HEADERS)


@router.get(
    "/v1/approvals/{token}",
    response_model=ApprovalRead,
    responses={
        200: {"content": _HTML, "description": "the confirmation page, or the link's state"},
        **_ERRORS,
    },
)
async def show_approval(token: TokenPath, request: Request, runtime: RuntimeDep) -> Response:
    """The approval link's page: the ticket, what the link will do, and a button to do it.

    Changes nothing (mail scanners and link previews open links by themselves); only the
    button's ``POST`` records the decision. When the ticket already has a decision, the page
    says which and when.
    """
    try:
        link = await _open(token, runtime)
    except _Refusal as refusal:
        return _refused(request, refusal)
    return _answer(request, link, "decided" if link.decided else "pending", link.decided)


@router.post(
    "/v1/approvals/{token}",
    response_model=ApprovalRead,
    responses={
        200: {"content": _HTML, "description": "recorded: a thank-you page, or the decision"},
        409: {
            "model": ApprovalRead,
            "content": _HTML,
            "description": "the ticket already has a decision; the answer names it",
        },
        **_ERRORS,
    },
)
async def record_approval(token: TokenPath, request: Request, runtime: RuntimeDep) -> Response:
    """Record the approver's decision as a ``ticket.updated`` event (approved or declined).

    One decision per ticket: a second click, or the other link afterwards, answers 409 with
    the decision already recorded. Answers once JetStream has stored the event.
    """
    try:
        link = await _open(token, runtime)
    except _Refusal as refusal:
        return _refused(request, refusal)
    claim = link.claim
    if link.decided is not None:
        runtime.metrics.approvals.labels(claim.tenant, "conflict").inc()
        return _answer(request, link, "decided", link.decided, status.HTTP_409_CONFLICT)
    change = TicketChange.APPROVED if claim.decision == "approve" else TicketChange.DECLINED
    event = TicketUpdated(
        # the ticket, not the decision: an approve and a decline racing store only one
        event_id=derive_id(claim.tenant, claim.ticket_id, "approval"),
        occurred_at=runtime.clock(),
        tenant=claim.tenant,
        ticket_id=claim.ticket_id,
        change=change,
        actor=Actor(kind="client", id=claim.approver),
    )
    js = jetstream(runtime.broker)
    try:
        ack = await publish_event(runtime.broker, event)
        # A duplicate: a click racing this one stored the decision first; say which it was.
        stored = (
            _decision(await ticket_events(js, claim.ticket_id, tenant=claim.tenant))
            if ack.duplicate
            else None
        )
    except (NatsError, TimeoutError, NotReadyError) as exc:
        log.warning("approval not stored: %s", type(exc).__name__)
        unavailable = _Refusal(503, "unavailable", link.language)
        return _refused(request, unavailable)
    if stored is not None:
        runtime.metrics.approvals.labels(claim.tenant, "conflict").inc()
        return _answer(request, link, "decided", stored, status.HTTP_409_CONFLICT)
    runtime.metrics.approvals.labels(claim.tenant, change.value).inc()
    log.info("ticket %s: %s by the approver", claim.ticket_id, change.value)
    return _answer(request, link, "recorded", event)
