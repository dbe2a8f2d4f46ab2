"""Notifier settings (``OPORA_`` environment variables)."""

from pathlib import Path

from opora_shared.settings import OporaSettings


class NotifierSettings(OporaSettings):
    """Settings of the notifier service."""

    metrics_port: int = 9104
    support_address: str = "support@opora.local"
    """From and Reply-To of client mail; replies come back to the intake."""
    support_name: str = "Opora Support"
    mail_domain: str = "opora.local"
    """Right-hand side of the Message-IDs Opora makes."""
    outbox_path: Path | None = None
    """Where .eml files go in the embedded default; <var_dir>/outbox unless set."""

    @property
    def outbox(self) -> Path:
        """The outbox directory in use."""
        return self.outbox_path or self.outbox_dir
