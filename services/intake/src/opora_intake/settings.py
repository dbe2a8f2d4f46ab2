"""Intake settings (``OPORA_`` environment variables)."""

from pydantic import Field

from opora_shared.settings import OporaSettings


class IntakeSettings(OporaSettings):
    """Settings of the intake service."""

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    metrics_port: int = 9101
    max_json_bytes: int = Field(default=1024 * 1024, ge=1024, description="413 above this")
    id_block_size: int = Field(
        default=50, ge=1, le=10_000, description="ticket numbers reserved per KV round trip"
    )
