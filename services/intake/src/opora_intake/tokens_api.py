"""Managing API tokens: make one (shown once), list them, revoke one. Admin tokens only.

A token is for one tenant, several, or every tenant (``*``: provider staff, engineers), with
scopes ``tickets:read``, ``tickets:write``, ``events:write`` and ``admin``; ``admin`` is only for
tokens of every tenant (it may make tokens for any). Only the token's SHA-256 is stored
(``opora_shared.tokens``). Creation and revocation are logged with the token's id and the
admin token's id, never a token.
"""

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from nats.js.errors import KeyWrongLastSequenceError

from opora_intake.api import RuntimeDep, TokenDep, forbidden, invalid, unavailable
from opora_intake.api_models import Problem, TokenCreate, TokenCreated, TokenRead
from opora_intake.errors import NATS_UNAVAILABLE
from opora_shared.nats.broker import jetstream
from opora_shared.tokens import (
    ALL_TENANTS,
    TokenRecord,
    TokenScope,
    create_token,
    list_tokens,
    revoke_token,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "no token, or an unknown or revoked one"},
    403: {"model": Problem, "description": "not an admin token of every tenant"},
    503: {"model": Problem, "description": "NATS unavailable; retry later"},
}


def _require_admin(token: TokenRecord) -> None:
    if not (token.allows(TokenScope.ADMIN) and token.all_tenants):
        raise forbidden("managing tokens needs an admin token of every tenant")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenCreated,
    responses={**_ERRORS, 422: {"description": "a field is invalid; the answer names it"}},
)
async def make_token(body: TokenCreate, runtime: RuntimeDep, token: TokenDep) -> TokenCreated:
    """Make a token; the answer holds it, once (only its hash is kept).

    Give ``tenant`` (one tenant, or ``*`` for every tenant) or ``tenants`` (a list). The
    ``admin`` scope is only for tokens of every tenant. Each tenant must have a contract.
    """
    _require_admin(token)
    if (body.tenant is None) == (body.tenants is None):
        raise invalid("body", "tenant", msg="give either tenant (one, or *) or tenants (a list)")
    if TokenScope.ADMIN in body.scopes and body.tenant != ALL_TENANTS:
        raise invalid("body", "scopes", msg="the admin scope needs tenant '*'")
    book = runtime.contracts.book
    named = [body.tenant] if body.tenant not in (None, ALL_TENANTS) else (body.tenants or [])
    for index, tenant in enumerate(named):
        if tenant is not None and tenant not in book:
            loc = ("body", "tenant") if body.tenants is None else ("body", "tenants", index)
            raise invalid(*loc, msg=f"tenant {tenant!r} has no contract")
    try:
        secret, record = await create_token(
            jetstream(runtime.broker),
            name=body.name,
            tenant=body.tenant,
            tenants=body.tenants or (),
            scopes=[s.value for s in body.scopes],
            created_by=token.id,
            now=runtime.clock(),
        )
    except KeyWrongLastSequenceError as exc:  # 256 random bits collided: never in practice
        raise unavailable("token not made") from exc
    except NATS_UNAVAILABLE as exc:
        raise unavailable("the token store is unavailable") from exc
    log.info(
        "token %s made by %s: tenants %s, scopes %s",
        record.id,
        token.id,
        ALL_TENANTS if record.all_tenants else ",".join(sorted(record.tenant_set)),
        ",".join(record.scopes),
    )
    return TokenCreated(**TokenRead.of(record).model_dump(), token=secret)


@router.get("", response_model=list[TokenRead], responses=_ERRORS)
async def read_tokens(runtime: RuntimeDep, token: TokenDep) -> list[TokenRead]:
    """Every token: id, name, tenants, scopes, when made, whether revoked (never the token)."""
    _require_admin(token)
    try:
        records = await list_tokens(jetstream(runtime.broker))
    except NATS_UNAVAILABLE as exc:
        raise unavailable("the token store is unavailable") from exc
    return [TokenRead.of(record) for record in records]


@router.delete(
    "/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        **_ERRORS,
        404: {"model": Problem, "description": "no token with this id"},
        409: {"model": Problem, "description": "a token cannot revoke itself"},
    },
)
async def delete_token(
    token_id: Annotated[str, Path(max_length=64, description="the token's id (tok_...)")],
    runtime: RuntimeDep,
    token: TokenDep,
) -> Response:
    """Revoke a token: from now on it answers 401. Revoking a revoked token changes nothing."""
    _require_admin(token)
    if token_id == token.id:
        raise HTTPException(status.HTTP_409_CONFLICT, "a token cannot revoke itself")
    try:
        record = await revoke_token(
            jetstream(runtime.broker), token_id, by=token.id, now=runtime.clock()
        )
    except NATS_UNAVAILABLE as exc:
        raise unavailable("the token store is unavailable") from exc
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id}")
    log.info("token %s revoked by %s", record.id, token.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
