"""Pure normalisers of what the intake receives: raw email today (``parsing.email``)."""

from opora_intake.parsing.email import (
    Attachment,
    ParsedEmail,
    parse_email,
    strip_subject_prefixes,
    to_json,
)

__all__ = ["Attachment", "ParsedEmail", "parse_email", "strip_subject_prefixes", "to_json"]
