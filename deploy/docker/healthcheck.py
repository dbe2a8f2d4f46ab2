"""Container health check: exit 0 when a URL answers 2xx, 1 otherwise (the image has no curl).

    python /opt/opora/healthcheck.py http://127.0.0.1:8080/readyz

Standard library only; it must not import Opora (a check that takes seconds to start is a bad
check).
"""

import sys
import urllib.request


def healthy(url: str, *, timeout: float = 3.0) -> bool:
    """True when ``url`` answers with a 2xx status within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own URL
            return 200 <= int(response.status) < 300
    except OSError:  # URLError and HTTPError (a 503 from /readyz) are OSErrors
        return False


def main(argv: list[str]) -> int:
    """Check the URL given as the only argument."""
    if len(argv) != 2:
        print("usage: healthcheck.py URL", file=sys.stderr)
        return 2
    return 0 if healthy(argv[1]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
