"""Run the sla-timer: ``python -m opora_sla_timer``."""

from opora_shared.service import main as run_service
from opora_sla_timer.app import create_app
from opora_sla_timer.settings import SlaTimerSettings


def main() -> None:
    """Build settings from the environment and run until stopped."""
    run_service("sla-timer", SlaTimerSettings, create_app)


if __name__ == "__main__":
    main()
