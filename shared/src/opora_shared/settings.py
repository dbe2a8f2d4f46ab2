"""Settings common to every service: environment variables with the ``OPORA_`` prefix.

Build settings in ``__main__`` or a test fixture and pass them down; nothing here reads the
environment at import time.
"""

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OporaSettings(BaseSettings):
    """What every service needs: where NATS is, where files are, how consumers behave."""

    model_config = SettingsConfigDict(env_prefix="OPORA_", extra="ignore", frozen=True)

    nats_url: str = Field(
        default="nats://127.0.0.1:4222", description="NATS server(s), comma-separated"
    )
    var_dir: Path = Field(
        default=Path("var"), description="runtime data: NATS store, outbox, token"
    )
    contracts_dir: Path = Field(default=Path("deploy/contracts"), description="tenant contracts")
    team_file: Path = Field(
        default=Path("deploy/team.yml"), description="the provider's team: engineers, shifts"
    )
    contracts_seed: bool = Field(
        default=True,
        description="put local contract files the KV bucket lacks (off for read-only NATS users)",
    )
    signing_key: SecretStr | None = Field(
        default=None, description="HMAC key of approval links; default var/signing.key (0600)"
    )
    public_url: str = Field(
        default="http://127.0.0.1:8080", description="the intake's address as clients see it"
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 disables /metrics")
    log_level: str = "INFO"
    connect_timeout_s: float = Field(default=10.0, gt=0, description="first connection to NATS")
    max_deliver: int = Field(default=5, ge=1, description="deliveries before a dead letter")
    ack_wait_s: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=100, ge=1, le=1000, description="pull consumer fetch size")

    @field_validator("nats_url")
    @classmethod
    def _nats_scheme(cls, value: str) -> str:
        for url in value.split(","):
            if not url.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                msg = f"OPORA_NATS_URL must be nats://host:port (got a URL without it: {url!r})"
                raise ValueError(msg)
        return value

    @property
    def nats_servers(self) -> list[str]:
        """The NATS URLs as a list."""
        return [url.strip() for url in self.nats_url.split(",")]

    @property
    def outbox_dir(self) -> Path:
        """Where the embedded default's mail channel writes .eml files."""
        return self.var_dir / "outbox"

    @property
    def signing_key_file(self) -> Path:
        """Where the approval-link key lives when ``signing_key`` is not set."""
        return self.var_dir / "signing.key"

    @property
    def admin_token_file(self) -> Path:
        """Where ``make run`` keeps the admin API token (mode 0600)."""
        return self.var_dir / "admin.token"


def is_loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses (where plain text never leaves the machine)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_https(name: str, url: str) -> None:
    """ValueError naming the variable unless the URL is https (plain http only to loopback)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return
    msg = f"{name} must be an https:// URL (plain http only to a loopback address)"
    raise ValueError(msg)
