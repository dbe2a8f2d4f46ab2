"""Run the notifier: ``python -m opora_notifier``."""

from opora_notifier.app import create_app
from opora_notifier.settings import NotifierSettings
from opora_shared.service import main as run_service


def main() -> None:
    """Build settings from the environment and run until stopped."""
    run_service("notifier", NotifierSettings, create_app)


if __name__ == "__main__":
    main()
