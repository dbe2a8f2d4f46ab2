"""Other tools' alerts read into one shape, ``AlertSignal``, and rendered for people. Pure.

The rendering is what engineers read and what the classifier judges: the severity goes into
the text as ``Severity: <the tool's word>``, followed by Opora's reading of it in the four words
the classifier's alert signals know (``disaster``, ``critical``, ``warning``,
``informational``) when the tool's word is another (``Severity: high (critical)``), labels and
annotations as
``key = value`` lines, in the layout of the monitoring mail the classifier was trained on. The
template's own words are neutral on purpose: a firing alert's text never says "resolved" or
"ok", which the classifier would read as a recovery.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opora_intake.integrations.models import (
    Action,
    AlertmanagerAlert,
    AlertmanagerWebhook,
    IntegrationEvent,
    PagerDutyEvent,
)

MAX_BODY = 100_000
MAX_SUBJECT = 998
MAX_ALERTS_SHOWN = 50
MAX_VALUE = 2_000

ALERTMANAGER = "alertmanager"
GRAFANA = "grafana"
PAGERDUTY = "pagerduty"

_SEVERITY_ORDER = ("disaster", "critical", "page", "high", "error", "warning", "average", "info")
_GENERIC_FIELDS = frozenset(IntegrationEvent.model_fields)


@dataclass(frozen=True, slots=True)
class AlertSignal:
    """One alert, whatever tool sent it: what to do, to which key, and the text for people."""

    source: str
    """The sending tool (the dedup namespace and the requester's name)."""
    dedup_key: str
    action: Action
    subject: str
    body: str


def source_name(source: str) -> str:
    """A short, address-safe name of a source: ``grafana.example.com``, ``zabbix``."""
    text = source.strip()
    if "://" in text:
        text = urlsplit(text).hostname or text.split("://", 1)[1]
    else:
        text = next((part for part in text.split("/") if part), text)
        if text.lower().startswith("urn:"):
            text = text.split(":")[-1] or text
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")[:64].strip("-.")
    return name or "integration"


def requester_address(source: str, tenant: str) -> str:
    """Who the ticket is from: the source, under the tenant (``alertmanager@romashka``)."""
    return f"{source_name(source)}@{tenant}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return _clip(" ".join(text.split()), MAX_VALUE)


def _pairs(title: str, mapping: Mapping[str, Any]) -> list[str]:
    if not mapping:
        return []
    return [f"{title}:", *(f" - {k} = {_one_line(v)}" for k, v in sorted(mapping.items()))]


def _finish(lines: Iterable[str]) -> str:
    return _clip("\n".join(lines).strip(), MAX_BODY)


# Tools' severity words, read as the four words the classifier's alert signals know.
_SEVERITY_READING = {
    **dict.fromkeys(("disaster", "emergency", "fatal"), "disaster"),
    **dict.fromkeys(
        ("critical", "crit", "high", "error", "err", "page", "major", "alert", "severe"),
        "critical",
    ),
    **dict.fromkeys(("warning", "warn", "average", "minor", "medium"), "warning"),
    **dict.fromkeys(
        ("info", "information", "informational", "notice", "low", "none", "ok"), "informational"
    ),
}


def severity_line(word: str) -> str:
    """``Severity: <the tool's word>``, with Opora's reading of it when that is another word.

    ``error`` reads ``Severity: error (critical)``: the classifier's alert signals see
    ``critical`` (P2), engineers still see the tool's own word.
    """
    shown = _one_line(word)
    reading = _SEVERITY_READING.get(word.strip().lower())
    if reading is None or reading in shown.lower() or shown.lower() == "info":
        return f"Severity: {shown}"
    return f"Severity: {shown} ({reading})"


def worst_severity(words: Iterable[str]) -> str | None:
    """The most severe of several severity words (unknown words rank last), or None."""
    present = [w for w in words if w]
    if not present:
        return None

    def rank(word: str) -> int:
        lowered = word.lower()
        return (
            _SEVERITY_ORDER.index(lowered) if lowered in _SEVERITY_ORDER else len(_SEVERITY_ORDER)
        )

    return min(present, key=rank)


# -- the generic integrator event -------------------------------------------------------------


def from_event(event: IntegrationEvent) -> AlertSignal:
    """The generic integrator event (HTTP, CloudEvents data or NATS)."""
    lines = [f"Alert from {event.source}: {event.summary}"]
    if event.severity:
        lines.append(severity_line(event.severity))
    if event.resource:
        lines.append(f"Resource: {event.resource}")
    lines.append(f"Dedup key: {event.dedup_key}")
    lines += _pairs("Details", event.details)
    return AlertSignal(
        source=event.source,
        dedup_key=event.dedup_key,
        action=event.action,
        subject=_clip(event.summary, MAX_SUBJECT),
        body=_finish(lines),
    )


# -- Alertmanager and Grafana -----------------------------------------------------------------


def _alertname(payload: AlertmanagerWebhook) -> str:
    for labels in (payload.groupLabels, payload.commonLabels):
        if labels.get("alertname"):
            return labels["alertname"]
    names = sorted({a.labels["alertname"] for a in payload.alerts if a.labels.get("alertname")})
    if names:
        return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1})"
    return payload.title or "alert group"


def _alert_lines(alert: AlertmanagerAlert, index: int, total: int) -> list[str]:
    lines = ["", f"Alert {index} of {total}"]
    lines += _pairs("Labels", alert.labels)
    lines += _pairs("Annotations", alert.annotations)
    if alert.valueString:
        lines.append(f"Values: {_one_line(alert.valueString)}")
    if alert.startsAt and not alert.startsAt.startswith("0001-"):
        lines.append(f"Starts at: {alert.startsAt}")
    if alert.generatorURL:
        lines.append(f"Source: {alert.generatorURL}")
    return lines


def from_alertmanager(payload: AlertmanagerWebhook) -> AlertSignal:
    """An Alertmanager (or Grafana alerting) notification: one signal per alert group."""
    source = GRAFANA if payload.title is not None else ALERTMANAGER
    name = _alertname(payload)
    if payload.status == "resolved":
        return AlertSignal(
            source=source,
            dedup_key=payload.groupKey,
            action="resolve",
            subject=_clip(name, MAX_SUBJECT),
            body=f"{source}: every alert of the group {name} stopped firing",
        )
    firing = [a for a in payload.alerts if a.status != "resolved"] or list(payload.alerts)
    count = len(firing) + payload.truncatedAlerts
    summary = payload.commonAnnotations.get("summary") or next(
        (a.annotations["summary"] for a in firing if a.annotations.get("summary")), ""
    )
    instance = payload.commonLabels.get("instance", "")
    subject = f"[FIRING:{count}] {name}" + (f" {instance}" if instance else "")
    if summary and summary not in subject:
        subject += f": {summary}"
    severity = payload.commonLabels.get("severity") or worst_severity(
        a.labels.get("severity", "") for a in firing
    )
    lines = [f"[FIRING:{count}] {name}"]
    if severity:
        lines.append(severity_line(severity))
    if summary:
        lines.append(f"Summary: {_one_line(summary)}")
    if payload.receiver:
        lines.append(f"Receiver: {_one_line(payload.receiver)}")
    lines += _pairs("Group", payload.groupLabels)
    lines += _pairs("Common labels", payload.commonLabels)
    lines += _pairs("Common annotations", payload.commonAnnotations)
    shown = firing[:MAX_ALERTS_SHOWN]
    for index, alert in enumerate(shown, start=1):
        lines += _alert_lines(alert, index, count)
    hidden = count - len(shown)
    if hidden > 0:
        lines += ["", f"... and {hidden} more alerts of this group"]
    stopped = len(payload.alerts) - len(firing)
    if stopped > 0:
        lines.append(f"Alerts of the group no longer firing: {stopped}")
    if payload.externalURL:
        lines += ["", f"Alertmanager: {payload.externalURL}"]
    return AlertSignal(
        source=source,
        dedup_key=payload.groupKey,
        action="trigger",
        subject=_clip(subject, MAX_SUBJECT),
        body=_finish(lines),
    )


# -- PagerDuty Events API v2 ------------------------------------------------------------------


def from_pagerduty(event: PagerDutyEvent, dedup_key: str) -> AlertSignal:
    """A PagerDuty event; ``dedup_key`` is the event's, or one made for a trigger without it."""
    payload = event.payload
    if event.event_action != "trigger" or payload is None:
        verb = "acknowledged" if event.event_action == "acknowledge" else "closed"
        return AlertSignal(
            source=PAGERDUTY,
            dedup_key=dedup_key,
            action=event.event_action,
            subject=dedup_key,
            body=f"{verb} by {event.client or 'the monitoring tool'} (PagerDuty event)",
        )
    lines = [f"PagerDuty event from {event.client or 'a monitoring tool'}: {payload.summary}"]
    lines.append(severity_line(payload.severity))
    lines.append(f"Source: {payload.source}")
    for title, value in (
        ("Component", payload.component),
        ("Group", payload.group),
        ("Class", payload.class_),
        ("Timestamp", payload.timestamp),
    ):
        if value:
            lines.append(f"{title}: {_one_line(value)}")
    lines.append(f"Dedup key: {dedup_key}")
    details = payload.custom_details
    if isinstance(details, Mapping):
        lines += _pairs("Details", details)
    elif details is not None:
        lines.append(f"Details: {_one_line(details)}")
    if event.links:
        lines.append("Links:")
        lines += [f" - {_one_line(link.text or link.href)}: {link.href}" for link in event.links]
    if event.client_url:
        lines.append(f"Monitoring: {event.client_url}")
    return AlertSignal(
        source=PAGERDUTY,
        dedup_key=dedup_key,
        action="trigger",
        subject=_clip(payload.summary, MAX_SUBJECT),
        body=_finish(lines),
    )


# -- CloudEvents ------------------------------------------------------------------------------

_RESOLVE_TYPES = frozenset({"resolve", "resolved", "recovered", "closed"})
_ACK_TYPES = frozenset({"acknowledge", "acknowledged"})


def _action_from_type(ce_type: str) -> Action:
    last = re.split(r"[.:/]", ce_type.lower())[-1]
    if last in _RESOLVE_TYPES:
        return "resolve"
    if last in _ACK_TYPES:
        return "acknowledge"
    return "trigger"


def event_fields_from_cloudevent(attributes: Mapping[str, Any], data: Any) -> dict[str, Any]:
    """The generic event's fields from a CloudEvent (validate them with IntegrationEvent).

    ``data`` (a JSON object) may carry the generic event's fields; whatever it lacks comes from
    the attributes: ``source`` from ``source``, ``dedup_key`` from ``subject`` (else ``id``),
    ``summary`` from ``subject`` (else ``type``), ``action`` from the last word of ``type``
    (``...resolved`` resolves), ``severity`` from a ``severity`` extension attribute. Other data
    fields go to ``details``.
    """
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            (fields if key in _GENERIC_FIELDS else extra)[str(key)] = value
    elif isinstance(data, bytes | bytearray):
        extra["data"] = f"{len(data)} bytes of {attributes.get('datacontenttype') or 'data'}"
    elif data is not None:
        extra["data"] = data
    ce_type = str(attributes.get("type") or "")
    subject = str(attributes.get("subject") or "")
    fields.setdefault("source", attributes.get("source"))
    fields.setdefault("dedup_key", subject or attributes.get("id"))
    fields.setdefault("summary", subject or ce_type)
    fields.setdefault("action", _action_from_type(ce_type))
    if "severity" not in fields and attributes.get("severity"):
        fields["severity"] = str(attributes["severity"])
    details = fields.get("details")
    if isinstance(details, Mapping) or details is None:
        merged = {**dict(details or {}), **extra}
        merged.setdefault("cloudevent type", ce_type)
        merged.setdefault("cloudevent id", str(attributes.get("id") or ""))
        fields["details"] = merged
    return fields
