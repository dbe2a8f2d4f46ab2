"""``opora parse-email FILE...``: print what the email normaliser makes of mail files.

One JSON object per file and line (attachments without their bytes), in the order given. A file
that cannot be read or parsed gives ``{"file": ..., "error": "..."}``, never a traceback.
"""

import json
import sys
from collections.abc import Sequence
from typing import TextIO

from opora_intake.parsing.email import parse_email, to_json


def _describe(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        return {"file": path, "error": f"cannot read: {exc.strerror or type(exc).__name__}"}
    except Exception as exc:  # a path the OS cannot even name (NUL byte, encoding)
        return {"file": path, "error": f"cannot read: {type(exc).__name__}"}
    try:
        return {"file": path, **to_json(parse_email(raw))}
    except Exception as exc:  # parse_email promises not to raise; keep the CLI's promise anyway
        return {"file": path, "error": f"cannot parse: {type(exc).__name__}"}


def parse_files(paths: list[str], out: TextIO) -> int:
    """Write one JSON line per mail file to ``out``; always returns 0."""
    for path in paths:
        line = json.dumps(_describe(path), ensure_ascii=False)
        # A lone surrogate (from an undecodable file name) must not break the stream.
        out.write(line.encode("utf-8", "replace").decode("utf-8") + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the file paths are the arguments."""
    return parse_files(list(sys.argv[1:] if argv is None else argv), sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
