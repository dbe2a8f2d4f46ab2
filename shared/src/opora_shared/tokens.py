"""API tokens: random, shown once, stored only as their SHA-256 in the tokens KV bucket."""

import hashlib
import json
import logging
import os
import secrets
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from pydantic import BaseModel, ConfigDict

from opora_shared import subjects

log = logging.getLogger(__name__)

ALL_TENANTS = "*"


class TokenRecord(BaseModel):
    """What a token may do: its tenant (``*`` for provider staff) and scopes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    tenant: str
    scopes: tuple[str, ...]
    revoked: bool = False

    def allows(self, scope: str, tenant: str | None = None) -> bool:
        """True when the token has the scope (or admin) and may see the tenant."""
        if self.revoked or (scope not in self.scopes and "admin" not in self.scopes):
            return False
        return tenant is None or self.tenant in (ALL_TENANTS, tenant)


def token_key(token: str) -> str:
    """The KV key of a token: its SHA-256, so the bucket never holds a usable secret."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return "opora_" + secrets.token_urlsafe(32)


async def store_token(js: JetStreamContext, token: str, record: TokenRecord) -> None:
    """Record a token's rights under its hash."""
    kv = await js.key_value(subjects.TOKENS_BUCKET)
    await kv.put(token_key(token), record.model_dump_json().encode())


async def lookup_token(js: JetStreamContext, token: str) -> TokenRecord | None:
    """The rights of a presented token, or None when unknown."""
    kv = await js.key_value(subjects.TOKENS_BUCKET)
    try:
        entry = await kv.get(token_key(token))
    except KeyNotFoundError:
        return None
    if entry.value is None:
        return None
    return TokenRecord.model_validate(json.loads(entry.value))


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
