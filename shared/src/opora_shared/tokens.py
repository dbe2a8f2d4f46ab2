"""API tokens: random, shown once, stored only as their SHA-256 in the tokens KV bucket.

A token's record says what it may do: its scopes and the tenants it may act for (one tenant, a
list of tenants, or ``*`` for every tenant: provider staff and engineers). The record is kept
under the SHA-256 of the token, so the bucket never holds a usable secret; the token's *id*
(``tok_`` and the first 16 hex digits of that hash) names it in listings, audit logs and event
actors, and is not a secret. Revoking marks the record (``revoked``): the next request with the
token answers 401, because every request reads the record again.

Nothing here logs a token; callers log ids.
"""

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from opora_shared import subjects
from opora_shared.nats.kv import kv_snapshot

log = logging.getLogger(__name__)

ALL_TENANTS = "*"
TOKEN_ID_PREFIX = "tok_"  # noqa: S105 - a prefix of token ids, not a secret
_CAS_ATTEMPTS = 10


class TokenScope(StrEnum):
    """What a token may do."""

    TICKETS_READ = "tickets:read"
    """Read and list tickets of its tenants."""
    TICKETS_WRITE = "tickets:write"
    """Act on tickets of its tenants (acknowledge, reply, resolve...)."""
    EVENTS_WRITE = "events:write"
    """Send integration events (alerts) that open, update and resolve tickets."""
    ADMIN = "admin"
    """Everything, and managing tokens; only for tokens of every tenant."""


class TokenRecord(BaseModel):
    """What a token may do: its tenants (``*`` for provider staff) and scopes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    tenant: str | None = Field(
        default=None,
        description="one tenant, or * for every tenant; None when `tenants` lists them",
    )
    tenants: tuple[str, ...] = Field(default=(), description="the tenants of a multi-tenant token")
    scopes: tuple[str, ...]
    created_at: AwareDatetime | None = None
    created_by: str | None = Field(default=None, description="the id of the token that made it")
    revoked: bool = False
    revoked_at: AwareDatetime | None = None
    revoked_by: str | None = None
    id: str = Field(default="", exclude=True, description="derived from the key; never stored")

    @property
    def all_tenants(self) -> bool:
        """True for a token of every tenant."""
        return self.tenant == ALL_TENANTS

    @property
    def tenant_set(self) -> frozenset[str]:
        """The tenants named by the token (empty for an all-tenants token: see all_tenants)."""
        named = set(self.tenants)
        if self.tenant and self.tenant != ALL_TENANTS:
            named.add(self.tenant)
        return frozenset(named)

    def has_scope(self, scope: str) -> bool:
        """True when the token is live and has the scope (admin has every scope)."""
        return not self.revoked and (scope in self.scopes or TokenScope.ADMIN in self.scopes)

    def allows(self, scope: str, tenant: str | None = None) -> bool:
        """True when the token has the scope (or admin) and may see the tenant."""
        if not self.has_scope(scope):
            return False
        return tenant is None or self.all_tenants or tenant in self.tenant_set

    def tenants_for(self, scope: str) -> frozenset[str] | None:
        """The tenants the token may use the scope for: None for every tenant, empty for none."""
        if not self.has_scope(scope):
            return frozenset()
        return None if self.all_tenants else self.tenant_set

    def single_tenant(self) -> str | None:
        """The token's tenant when it has exactly one, else None."""
        named = self.tenant_set
        return next(iter(named)) if not self.all_tenants and len(named) == 1 else None


def token_key(token: str) -> str:
    """The KV key of a token: its SHA-256, so the bucket never holds a usable secret."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(key: str) -> str:
    """The public id of the token stored under ``key`` (not a secret: a prefix of its hash)."""
    return TOKEN_ID_PREFIX + key[:16]


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return "opora_" + secrets.token_urlsafe(32)


async def _bucket(js: JetStreamContext) -> KeyValue:
    return await js.key_value(subjects.TOKENS_BUCKET)


async def store_token(js: JetStreamContext, token: str, record: TokenRecord) -> None:
    """Record a token's rights under its hash."""
    kv = await _bucket(js)
    await kv.put(token_key(token), record.model_dump_json().encode())


def _read(key: str, value: bytes | None) -> TokenRecord | None:
    if not value:
        return None
    try:
        record = TokenRecord.model_validate(json.loads(value))
    except (ValueError, ValidationError):
        log.warning("unreadable token record %s skipped", token_id(key))
        return None
    return record.model_copy(update={"id": token_id(key)})


async def lookup_token(js: JetStreamContext, token: str) -> TokenRecord | None:
    """The rights of a presented token, or None when unknown."""
    kv = await _bucket(js)
    key = token_key(token)
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return _read(key, entry.value)


async def create_token(
    js: JetStreamContext,
    *,
    name: str,
    tenant: str | None,
    tenants: Iterable[str] = (),
    scopes: Iterable[str],
    created_by: str | None,
    now: datetime,
) -> tuple[str, TokenRecord]:
    """Make a new token and store its record; the token (shown once) and the record."""
    token = new_token()
    record = TokenRecord(
        name=name,
        tenant=tenant,
        tenants=tuple(sorted(set(tenants))),
        scopes=tuple(dict.fromkeys(scopes)),
        created_at=now,
        created_by=created_by,
    )
    kv = await _bucket(js)
    key = token_key(token)
    await kv.create(key, record.model_dump_json().encode())
    return token, record.model_copy(update={"id": token_id(key)})


async def list_tokens(js: JetStreamContext) -> list[TokenRecord]:
    """Every token's record (never the token), oldest first."""
    entries = await kv_snapshot(js, subjects.TOKENS_BUCKET)
    records = [r for e in entries if (r := _read(e.key, e.value)) is not None]
    return sorted(records, key=lambda r: (r.created_at is not None, r.created_at, r.id))


async def revoke_token(
    js: JetStreamContext, wanted_id: str, *, by: str | None, now: datetime
) -> TokenRecord | None:
    """Mark the token with this id revoked (at once); its record, or None when no such id."""
    if not wanted_id.startswith(TOKEN_ID_PREFIX) or len(wanted_id) != len(TOKEN_ID_PREFIX) + 16:
        return None
    kv = await _bucket(js)
    prefix = wanted_id.removeprefix(TOKEN_ID_PREFIX)
    entries = await kv_snapshot(js, subjects.TOKENS_BUCKET)
    keys = [e.key for e in entries if e.key.startswith(prefix)]
    if not keys:
        return None
    key = keys[0]
    for _ in range(_CAS_ATTEMPTS):
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        record = _read(key, entry.value)
        if record is None:
            return None
        if record.revoked:
            return record
        revoked = record.model_copy(update={"revoked": True, "revoked_at": now, "revoked_by": by})
        try:
            await kv.update(key, revoked.model_dump_json().encode(), last=entry.revision)
        except KeyWrongLastSequenceError:
            continue
        return revoked
    msg = f"token {wanted_id}: the record kept changing under {_CAS_ATTEMPTS} attempts"
    raise RuntimeError(msg)


async def ensure_admin_token(js: JetStreamContext, path: Path) -> tuple[str, bool]:
    """Create the admin token file (mode 0600) on first start; register its hash. (token, new)"""
    created = False
    # A few bytes once at start-up: blocking file I/O is fine here.
    if path.exists():  # noqa: ASYNC240
        token = path.read_text().strip()  # noqa: ASYNC240
    else:
        token = new_token()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        created = True
    await store_token(js, token, TokenRecord(name="admin", tenant=ALL_TENANTS, scopes=("admin",)))
    return token, created
