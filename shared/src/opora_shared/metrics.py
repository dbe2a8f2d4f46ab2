"""Metrics plumbing: each service declares its metrics on its own registry and serves it."""

import logging

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> None:
    """Serve ``/metrics`` for a registry on a port (0 disables it), in a daemon thread."""
    if port == 0:
        return
    start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)
