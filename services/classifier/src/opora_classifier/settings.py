"""Classifier settings (``OPORA_`` environment variables)."""

from pathlib import Path

from pydantic import Field

from opora_shared.settings import OporaSettings

MODEL_DIR = Path(__file__).resolve().parents[2] / "model"


class ClassifierSettings(OporaSettings):
    """Settings of the classifier service."""

    metrics_port: int = 9102
    review_threshold: float = 0.5
    """Below this confidence the scope is needs_review."""
    model_dir: Path = MODEL_DIR
    """The trained model (``make model`` builds it from services/classifier/data)."""
    routing: bool = Field(
        default=True,
        description="assign classified tickets to engineers (off when another tool assigns them)",
    )
    shift_check_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="how often routing moves P1/P2 tickets of engineers off shift to on-duty",
    )
