"""The integration routes: generic events and CloudEvents, Alertmanager, PagerDuty.

Every route needs a token with ``events:write`` for the tenant. A token of one tenant sends
for that tenant; a token of several (or ``*``) names one with ``?tenant=``. PagerDuty's
``routing_key`` may itself be the token (PagerDuty senders cannot always add a header), see
``docs/api.md``. Each answers 202 once every effect is stored, saying what it did.
"""

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_binary, from_structured
from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opora_intake.api import (
    RuntimeDep,
    TokenDep,
    bearer,
    forbidden,
    invalid,
    token_of,
    unavailable,
)
from opora_intake.api_models import Problem
from opora_intake.errors import NATS_UNAVAILABLE
from opora_intake.integrations.models import (
    AlertmanagerWebhook,
    IntegrationAccepted,
    IntegrationEvent,
    PagerDutyAccepted,
    PagerDutyEvent,
)
from opora_intake.integrations.normalize import (
    AlertSignal,
    event_fields_from_cloudevent,
    from_alertmanager,
    from_event,
    from_pagerduty,
)
from opora_intake.runtime import IntakeRuntime
from opora_shared.events import Actor
from opora_shared.tokens import TokenRecord, TokenScope
from opora_shared.types import TenantId

log = logging.getLogger(__name__)

router = APIRouter(tags=["integrations"])

CLOUDEVENTS_JSON = "application/cloudevents+json"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"

TenantQuery = Annotated[
    TenantId | None,
    Query(description="the tenant, when the token spans several (else the token's own)"),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no token, or an unknown or revoked one"},
    403: {"model": Problem, "description": "the token may not send events for the tenant"},
    422: {"description": "a field is invalid; the answer names it"},
    503: {"model": Problem, "description": "NATS unavailable; nothing stored, retry later"},
}


class CloudEventStructured(BaseModel):
    """A CloudEvent 1.0 in structured mode (documentation of ``application/cloudevents+json``).

    ``data`` may carry the generic integrator event's fields; whatever it lacks comes from the
    attributes (docs/api.md).
    """

    model_config = ConfigDict(extra="allow")

    specversion: str = Field(default="1.0", pattern=r"^1\.0$")
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    data: dict[str, Any] | None = None


_EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a generic integrator event (application/json), or a CloudEvent: "
        "structured (application/cloudevents+json) or binary (ce-* headers, the data as body)",
        "content": {
            "application/json": {"schema": IntegrationEvent.model_json_schema()},
            CLOUDEVENTS_JSON: {"schema": CloudEventStructured.model_json_schema()},
        },
    }
}


def _tenant(
    runtime: IntakeRuntime,
    token: TokenRecord,
    requested: str | None,
    loc: tuple[str, ...] = ("query", "tenant"),
) -> str:
    """The tenant the events are for: named, or the token's one; 403/422 saying why not."""
    if not token.has_scope(TokenScope.EVENTS_WRITE):
        raise forbidden("the token has no events:write scope")
    tenant = requested if requested is not None else token.single_tenant()
    if tenant is None:
        raise invalid(*loc, msg="the token spans several tenants: name one with ?tenant=")
    if not token.allows(TokenScope.EVENTS_WRITE, tenant):
        raise forbidden(f"the token may not send events for tenant {tenant}")
    if tenant not in runtime.contracts.book:
        raise invalid(*loc, msg=f"tenant {tenant!r} has no contract")
    return tenant


async def _ingest(
    runtime: IntakeRuntime, tenant: str, signal: AlertSignal, token: TokenRecord
) -> IntegrationAccepted:
    try:
        result = await runtime.alerts.ingest(tenant, signal, Actor(kind="token", id=token.id))
    except NATS_UNAVAILABLE as exc:
        log.warning("integration event not stored: %s", type(exc).__name__)
        raise unavailable("the ticket store is unavailable") from exc
    return IntegrationAccepted(
        tenant=tenant,
        source=signal.source,
        dedup_key=signal.dedup_key,
        outcome=result.outcome,
        ticket_id=result.ticket_id,
    )


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IntegrationAccepted,
    openapi_extra=_EVENTS_BODY,
    responses={
        **_ERRORS,
        415: {"model": Problem, "description": "neither JSON nor a CloudEvent"},
    },
)
async def receive_event(
    request: Request, runtime: RuntimeDep, token: TokenDep, tenant: TenantQuery = None
) -> IntegrationAccepted:
    """An integrator's alert: opens a ticket, updates it, or resolves it (by ``dedup_key``).

    Send the generic integrator event as ``application/json``, or a CloudEvent 1.0 in
    structured (``application/cloudevents+json``) or binary mode (``ce-*`` headers).
    """
    tenant_id = _tenant(runtime, token, tenant)
    event = await _read_event(request)
    return await _ingest(runtime, tenant_id, from_event(event), token)


@router.post(
    "/v1/integrations/alertmanager",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IntegrationAccepted,
    responses=_ERRORS,
)
async def receive_alertmanager(
    payload: AlertmanagerWebhook, runtime: RuntimeDep, token: TokenDep, tenant: TenantQuery = None
) -> IntegrationAccepted:
    """Prometheus Alertmanager's webhook, as is (Grafana alerting's too): one ticket per alert
    group (``groupKey``); a repeated notification updates it, ``resolved`` resolves it."""
    tenant_id = _tenant(runtime, token, tenant)
    return await _ingest(runtime, tenant_id, from_alertmanager(payload), token)


@router.post(
    "/v1/integrations/pagerduty",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PagerDutyAccepted,
    responses=_ERRORS,
)
async def receive_pagerduty(
    event: PagerDutyEvent,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    tenant: TenantQuery = None,
) -> PagerDutyAccepted:
    """A PagerDuty Events API v2 event: trigger, acknowledge or resolve, by ``dedup_key``.

    Without an Authorization header the ``routing_key`` is the token (events:write, one
    tenant): point any PagerDuty sender at this URL and give it an Opora token as its
    integration key. With a header, a multi-tenant token's ``routing_key`` names the tenant.
    """
    loc: tuple[str, ...] = ("query", "tenant")
    if credentials is not None and credentials.scheme.lower() == "bearer":
        token = await token_of(runtime, credentials.credentials)
        if tenant is None and token.single_tenant() is None:
            tenant, loc = event.routing_key, ("body", "routing_key")
    else:
        token = await token_of(runtime, event.routing_key)
    tenant_id = _tenant(runtime, token, tenant, loc)
    if event.event_action == "trigger" and event.payload is None:
        raise invalid("body", "payload", msg="a trigger needs a payload")
    if event.event_action != "trigger" and not event.dedup_key:
        raise invalid("body", "dedup_key", msg=f"{event.event_action} needs the dedup_key")
    dedup_key = event.dedup_key or uuid.uuid4().hex
    accepted = await _ingest(runtime, tenant_id, from_pagerduty(event, dedup_key), token)
    return PagerDutyAccepted(
        dedup_key=dedup_key, outcome=accepted.outcome, ticket_id=accepted.ticket_id
    )


# -- reading /v1/events -----------------------------------------------------------------------


async def _read_event(request: Request) -> IntegrationEvent:
    """The generic event of the request: as sent, or from a CloudEvent in either mode."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if any(name.startswith("ce-") for name in headers):
        _require_attributes({k.removeprefix("ce-") for k in headers if k.startswith("ce-")})
        return _generic(_cloudevent(lambda: from_binary(_message(headers, body), JSONFormat())))
    if media == CLOUDEVENTS_BATCH:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send one CloudEvent per request, not a batch"
        )
    if media not in ("", "application/json", CLOUDEVENTS_JSON) and not media.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send application/json (the integrator event) or a CloudEvent "
            "(application/cloudevents+json, or ce-* headers)",
        )
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be an event
        raise invalid("body", msg="the body is not JSON") from None
    if media == CLOUDEVENTS_JSON or (isinstance(data, dict) and "specversion" in data):
        if not isinstance(data, dict):
            raise invalid("body", msg="a structured CloudEvent is a JSON object")
        _require_attributes(set(data))
        return _generic(_cloudevent(lambda: from_structured(_message(headers, body), JSONFormat())))
    try:
        return IntegrationEvent.model_validate(data)
    except ValidationError as exc:
        raise _unprocessable(exc) from None


def _require_attributes(present: set[str]) -> None:
    """422 naming the first required attribute missing (the package would invent an id)."""
    for attribute in ("specversion", "id", "source", "type"):
        if attribute not in present:
            raise invalid("cloudevent", attribute, msg="required by CloudEvents 1.0")


def _message(headers: Mapping[str, str], body: bytes) -> HTTPMessage:
    return HTTPMessage(headers=dict(headers), body=body)


def _cloudevent(parse: Callable[[], BaseCloudEvent]) -> BaseCloudEvent:
    """Parse with the cloudevents package; its errors become a 422 naming the attribute."""
    try:
        event = parse()
    except CloudEventValidationError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("cloudevent", attribute),
                    "msg": "; ".join(str(problem) for problem in problems) or "invalid",
                    "input": None,
                }
                for attribute, problems in exc.errors.items()
            ]
        ) from None
    except (
        BaseCloudEventException,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        RecursionError,
    ) as exc:
        raise invalid("cloudevent", msg=f"not a CloudEvent 1.0 ({type(exc).__name__})") from None
    return event


def _generic(event: BaseCloudEvent) -> IntegrationEvent:
    fields = event_fields_from_cloudevent(event.get_attributes(), event.get_data())
    try:
        return IntegrationEvent.model_validate(fields)
    except ValidationError as exc:
        raise _unprocessable(exc, prefix=("cloudevent",)) from None


def _unprocessable(exc: ValidationError, prefix: tuple[str, ...] = ("body",)) -> Exception:
    """A pydantic error as FastAPI's 422, without echoing the input."""
    return RequestValidationError(
        [
            {"type": err["type"], "loc": (*prefix, *err["loc"]), "msg": err["msg"], "input": None}
            for err in exc.errors(include_url=False, include_input=False)
        ]
    )
