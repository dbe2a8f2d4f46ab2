"""Run the intake: ``python -m opora_intake`` (HTTP API on OPORA_HTTP_PORT, metrics apart)."""

import uvicorn
from prometheus_client import CollectorRegistry

from opora_intake.app import create_app
from opora_intake.settings import IntakeSettings
from opora_shared.logging import setup_logging
from opora_shared.metrics import serve_metrics


def main() -> None:
    """Build settings from the environment and serve until stopped."""
    settings = IntakeSettings()
    setup_logging(settings.log_level, service="intake")
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry, freeze_when_ready=True)
    serve_metrics(registry, settings.metrics_host, settings.metrics_port)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
