"""Run the classifier: ``python -m opora_classifier``."""

from opora_classifier.app import create_app
from opora_classifier.settings import ClassifierSettings
from opora_shared.service import main as run_service


def main() -> None:
    """Build settings from the environment and run until stopped."""
    run_service("classifier", ClassifierSettings, create_app)


if __name__ == "__main__":
    main()
