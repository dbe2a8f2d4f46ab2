"""Classifier settings (``OPORA_`` environment variables)."""

from opora_shared.settings import OporaSettings


class ClassifierSettings(OporaSettings):
    """Settings of the classifier service."""

    metrics_port: int = 9102
    review_threshold: float = 0.5
    """Below this confidence the scope is needs_review."""
