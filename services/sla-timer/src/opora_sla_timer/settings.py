"""SLA timer settings (``OPORA_`` environment variables)."""

from opora_shared.settings import OporaSettings


class SlaTimerSettings(OporaSettings):
    """Settings of the sla-timer service."""

    metrics_port: int = 9103
