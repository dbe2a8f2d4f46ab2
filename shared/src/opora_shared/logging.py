"""Logging setup shared by every service: one line per record, ids and decisions only.

Never log bodies, addresses or tokens: log the ticket id and what was decided.
"""

import logging
import sys


def setup_logging(level: str = "INFO", *, service: str) -> None:
    """Configure the root logger once for a service process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # nats-py logs a traceback per failed reconnect attempt; our error_cb says it in one line.
    logging.getLogger("nats.aio.client").setLevel(logging.CRITICAL)
