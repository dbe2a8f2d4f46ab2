"""Did the relay authenticate a team sender? Reading ``Authentication-Results`` (RFC 8601). Pure.

Engineers' mail can act on tickets, so a forged ``From: maria@...`` must not. Checking SPF,
DKIM and DMARC is the receiving relay's job (it has the connection and DNS); it records what it
found in an ``Authentication-Results`` header on top of the mail. The intake reads that header:

- with ``OPORA_MAIL_AUTHSERV_ID`` set (the relay's authserv-id, e.g. ``mx.opora.example``), only
  headers carrying that id count, and a team mail needs one that passes (below);
- without it, the topmost header (the last hop's) is read, and a team mail is refused only when
  it says the sender failed; a mail with no header passes (the relay is trusted to reject).

A pass is ``dmarc=pass``, or ``dkim=pass`` for the From domain (``header.d``/``header.i``), or
``spf=pass`` for the From domain (``smtp.mailfrom``). A fail is ``dmarc=fail``, or no pass and
some ``dkim``/``spf`` result of fail, softfail or permerror.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Literal

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_COMMENT = re.compile(r"\([^()]*\)")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_PAIR = re.compile(r"([A-Za-z0-9][\w.-]*)\s*=\s*(\S+)")
_FAILING = frozenset({"fail", "softfail", "permerror"})
MAX_HEADER_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class SenderAuth:
    """What the relay's header says of the sender."""

    result: Literal["pass", "fail", "none"]
    detail: str
    """The deciding method and result (``dkim=pass``), or why there is none."""


def authentication_results(raw: bytes) -> list[str]:
    """Every ``Authentication-Results`` header value of a raw mail, topmost first, unfolded."""
    end = _HEADER_END.search(raw, 0, MAX_HEADER_BYTES)
    head = raw[: end.start()] if end else raw[:MAX_HEADER_BYTES]
    message = BytesHeaderParser(policy=compat32).parsebytes(head)
    return [" ".join(str(v).split()) for v in message.get_all("Authentication-Results") or []]


def _resinfos(value: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """(authserv-id, [(method, result, properties)]) of one header value."""
    value = _QUOTED.sub('""', value)
    for _ in range(3):  # comments may nest a little
        value = _COMMENT.sub(" ", value)
    parts = [p.strip() for p in value.split(";")]
    authserv = parts[0].split()[0].lower() if parts and parts[0].split() else ""
    found: list[tuple[str, str, dict[str, str]]] = []
    for part in parts[1:]:
        pairs = _PAIR.findall(part)
        if not pairs:
            continue
        method, result = pairs[0][0].lower(), pairs[0][1].lower()
        props = {k.lower(): v.strip('"').lower() for k, v in pairs[1:]}
        found.append((method.split("/")[0], result, props))
    return authserv, found


def _aligned(domain: str, from_domain: str) -> bool:
    domain = domain.rpartition("@")[2].strip(".").lower()
    return bool(domain) and (
        domain == from_domain
        or from_domain.endswith("." + domain)
        or domain.endswith("." + from_domain)
    )


def judge_sender(
    headers: Sequence[str], from_domain: str, *, authserv_id: str | None
) -> SenderAuth:
    """What the relay found about a mail from ``from_domain`` (see the module docstring)."""
    from_domain = from_domain.strip().lower()
    chosen: list[tuple[str, str, dict[str, str]]] | None = None
    for value in headers:
        authserv, results = _resinfos(value)
        if authserv_id is None or authserv == authserv_id.lower():
            chosen = results
            break
    if chosen is None:
        where = f" from {authserv_id}" if authserv_id else ""
        return SenderAuth("none", f"no Authentication-Results{where}")
    for method, result, props in chosen:
        if method == "dmarc" and result == "pass":
            return SenderAuth("pass", "dmarc=pass")
        if method == "dkim" and result == "pass":
            signer = props.get("header.d") or props.get("header.i") or ""
            if _aligned(signer, from_domain):
                return SenderAuth("pass", "dkim=pass")
        if method == "spf" and result == "pass":
            envelope = props.get("smtp.mailfrom") or ""
            if _aligned(envelope, from_domain):
                return SenderAuth("pass", "spf=pass")
    for method, result, _ in chosen:
        if method == "dmarc" and result == "fail":
            return SenderAuth("fail", "dmarc=fail")
    for method, result, _ in chosen:
        if method in ("dkim", "spf") and result in _FAILING:
            return SenderAuth("fail", f"{method}={result}")
    return SenderAuth("none", "no passing result for the sender's domain")
