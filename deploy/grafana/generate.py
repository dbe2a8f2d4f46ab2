"""Opora's Grafana dashboards as code: writes ``deploy/grafana/dashboards/*.json``.

    python deploy/grafana/generate.py           # rewrite the JSON files
    python deploy/grafana/generate.py --check   # exit 1 when a committed file is stale

Standard library only, so it runs anywhere. The JSON is what Grafana loads (provisioning, see
``deploy/grafana/provisioning/``); edit this file, not the JSON, and commit both. Queries use
only the bounded labels the services export (tenant, channel, category, scope, priority, kind,
consumer, stream, service, app_name, handler); a unit test checks every metric they name is
really exported (``tests/unit/observability/test_metrics_catalogue.py``).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
TENANT = 'tenant=~"$tenant"'
SERVICE = 'service=~"$service"'
APP = 'app_name=~"$service"'

Panel = dict[str, Any]


# --- queries ----------------------------------------------------------------------------------


def series(metric: str, selector: str) -> str:
    """A series selector: the metric, with its label matchers if any."""
    return f"{metric}{{{selector}}}" if selector else metric


def per_minute(metric: str, selector: str, by: str) -> str:
    """A counter's rate per minute, summed by some labels."""
    return f"sum by ({by}) (rate({series(metric, selector)}[$__rate_interval])) * 60"


def in_range(metric: str, selector: str, by: str | None = None, window: str = "$__range") -> str:
    """How much a counter grew over the dashboard's time range (or another window)."""
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}(increase({series(metric, selector)}[{window}]))"


def quantile(q: float, metric: str, selector: str, by: str = "", window: str = "") -> str:
    """A histogram quantile over the rate of its buckets."""
    labels = f"{by}, le" if by else "le"
    rate = f"rate({series(metric + '_bucket', selector)}[{window or '$__rate_interval'}])"
    return f"histogram_quantile({q}, sum by ({labels}) ({rate}))"


def sla_kept(window: str) -> str:
    """Share of SLA clocks kept per tenant over a window: two clocks per armed ticket.

    Tenants without breaches have no breach series, hence ``or armed * 0``. The same
    approximation as the recording rule tenant:opora_sla_compliance:ratio1d.
    """
    breaches = in_range("opora_sla_events_total", f'kind="breach", {TENANT}', "tenant", window)
    armed = in_range("opora_sla_armed_total", TENANT, "tenant", window)
    return f"clamp(1 - ({breaches} or {armed} * 0) / (2 * {armed}), 0, 1)"


# --- panels -----------------------------------------------------------------------------------


def target(expr: str, legend: str = "", *, instant: bool = False, ref: str = "A") -> dict[str, Any]:
    """One PromQL query of a panel."""
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": ref,
    }


def targets(*queries: tuple[str, str], instant: bool = False) -> list[dict[str, Any]]:
    """Several (expr, legend) queries, refIds A, B, C..."""
    return [
        target(expr, legend, instant=instant, ref=chr(ord("A") + i))
        for i, (expr, legend) in enumerate(queries)
    ]


def _panel(kind: str, title: str, description: str, queries: list[dict[str, Any]]) -> Panel:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": queries,
    }


def timeseries(
    title: str,
    description: str,
    *queries: tuple[str, str],
    unit: str = "short",
    stacked: bool = False,
    bars: bool = False,
    width: int = 12,
    height: int = 8,
) -> Panel:
    """A time series graph."""
    panel = _panel("timeseries", title, description, targets(*queries))
    panel["fieldConfig"] = {
        "defaults": {
            "unit": unit,
            "min": 0,
            "custom": {
                "drawStyle": "bars" if bars else "line",
                "fillOpacity": 60 if bars else 10,
                "lineWidth": 1,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
            },
        },
        "overrides": [],
    }
    panel["options"] = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    panel["_size"] = (width, height)
    return panel


def _reduce() -> dict[str, Any]:
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def _thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for color, value in steps],
    }


def stat(
    title: str,
    description: str,
    *queries: tuple[str, str],
    unit: str = "short",
    thresholds: tuple[tuple[str, float | None], ...] = (("text", None),),
    mappings: list[dict[str, Any]] | None = None,
    decimals: int | None = None,
    width: int = 6,
    height: int = 4,
) -> Panel:
    """One big number per series (instant queries)."""
    panel = _panel("stat", title, description, targets(*queries, instant=True))
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": _thresholds(*thresholds),
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    panel["fieldConfig"] = {"defaults": defaults, "overrides": []}
    panel["options"] = {
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": _reduce(),
        "textMode": "auto",
    }
    panel["_size"] = (width, height)
    return panel


def piechart(
    title: str, description: str, query: tuple[str, str], *, width: int = 8, height: int = 8
) -> Panel:
    """Shares of a whole (instant query)."""
    panel = _panel("piechart", title, description, targets(query, instant=True))
    panel["fieldConfig"] = {"defaults": {"unit": "short"}, "overrides": []}
    panel["options"] = {
        "legend": {
            "displayMode": "table",
            "placement": "right",
            "showLegend": True,
            "values": ["value", "percent"],
        },
        "pieType": "donut",
        "reduceOptions": _reduce(),
        "tooltip": {"mode": "single", "sort": "none"},
    }
    panel["_size"] = (width, height)
    return panel


def bargauge(
    title: str,
    description: str,
    query: tuple[str, str],
    *,
    unit: str = "short",
    thresholds: tuple[tuple[str, float | None], ...] = (("blue", None),),
    width: int = 8,
    height: int = 8,
) -> Panel:
    """Horizontal bars, one per series (instant query)."""
    panel = _panel("bargauge", title, description, targets(query, instant=True))
    panel["fieldConfig"] = {
        "defaults": {
            "unit": unit,
            "min": 0,
            "color": {"mode": "thresholds"},
            "thresholds": _thresholds(*thresholds),
        },
        "overrides": [],
    }
    panel["options"] = {
        "displayMode": "gradient",
        "orientation": "horizontal",
        "reduceOptions": _reduce(),
        "showUnfilled": True,
    }
    panel["_size"] = (width, height)
    return panel


def row(title: str) -> Panel:
    """A full-width heading that groups the panels below it."""
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


UP_MAPPING = [
    {
        "type": "value",
        "options": {
            "0": {"color": "red", "index": 0, "text": "DOWN"},
            "1": {"color": "green", "index": 1, "text": "UP"},
        },
    }
]
SLA_THRESHOLDS = (("red", None), ("orange", 0.9), ("green", 0.95))


def layout(panels: list[Panel]) -> list[Panel]:
    """Place panels left to right in rows of 24 columns; number them from 1."""
    x = y = row_height = 0
    placed = []
    for number, panel in enumerate(panels, start=1):
        width, height = panel.pop("_size")
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        placed.append({"id": number, "gridPos": {"h": height, "w": width, "x": x, "y": y}, **panel})
        x += width
        row_height = max(row_height, height)
    return placed


# --- variables and dashboards -----------------------------------------------------------------


def datasource_variable() -> dict[str, Any]:
    """Which Prometheus to query; the provisioned one (uid ``prometheus``) by default."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def label_variable(name: str, label: str, metric: str) -> dict[str, Any]:
    """A multi-value variable over one label's values, "All" by default."""
    definition = f"label_values({metric}, {name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": definition,
        "query": {"query": definition, "refId": "StandardVariableQuery"},
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "allValue": ".*",
        "hide": 0,
        "includeAll": True,
        "multi": True,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    variables: list[dict[str, Any]],
    *,
    time_from: str = "now-6h",
) -> dict[str, Any]:
    """A whole dashboard, linked to its siblings by the ``opora`` tag."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["opora"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "version": 1,
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "asDropdown": False,
                "includeVars": False,
                "keepTime": True,
                "tags": ["opora"],
                "title": "Opora",
                "type": "dashboards",
            }
        ],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": layout(panels),
    }


def overview() -> dict[str, Any]:
    """Service desk overview: flow, backlog, acknowledgement times."""
    ack = "opora_intake_to_ack_seconds"
    panels = [
        row("Now"),
        stat(
            "Tickets received",
            "New tickets over the selected time range, every channel.",
            (in_range("opora_tickets_received_total", TENANT), "received"),
        ),
        stat(
            "Tickets classified",
            "Tickets tagged with category, scope and priority over the selected time range.",
            (in_range("opora_tickets_classified_total", TENANT), "classified"),
        ),
        stat(
            "Acknowledgement p90",
            "90 % of clients had their acknowledgement (ticket number and deadline) within this "
            "time of their request, over the selected time range.",
            (quantile(0.9, ack, TENANT, window="$__range"), "p90"),
            unit="s",
            thresholds=(("green", None), ("orange", 10), ("red", 30)),
        ),
        stat(
            "Services",
            "Whether Prometheus can scrape each service.",
            ('up{job="opora"}', "{{service}}"),
            mappings=UP_MAPPING,
            thresholds=(("red", None), ("green", 1)),
        ),
        row("Flow"),
        timeseries(
            "Received per minute, by channel",
            "New tickets per minute by the channel they came in on (email, web, api, integration).",
            (per_minute("opora_tickets_received_total", TENANT, "channel"), "{{channel}}"),
            stacked=True,
            width=8,
        ),
        timeseries(
            "Received per minute, by tenant",
            "New tickets per minute by client. Tenant 'unknown' is senders no contract claims.",
            (per_minute("opora_tickets_received_total", TENANT, "tenant"), "{{tenant}}"),
            stacked=True,
            width=8,
        ),
        timeseries(
            "Classified per minute, by priority",
            "Tickets classified per minute by the priority they were given.",
            (per_minute("opora_tickets_classified_total", TENANT, "priority"), "{{priority}}"),
            stacked=True,
            width=8,
        ),
        row("Backlog"),
        timeseries(
            "Received but not classified (last 15 minutes)",
            "Tickets received minus tickets classified over a sliding 15-minute window: near "
            "zero when the classifier keeps up. The alert OporaTicketBacklogGrowing fires when "
            "fewer than half are classified.",
            (
                f"{in_range('opora_tickets_received_total', TENANT, window='15m')} - "
                f"({in_range('opora_tickets_classified_total', TENANT, window='15m')} "
                "or vector(0))",
                "received − classified",
            ),
        ),
        timeseries(
            "Messages waiting per consumer",
            "Messages in JetStream not yet delivered to each durable consumer (from the "
            "server, so the same whichever replica reports it).",
            ("max by (consumer) (opora_consumer_pending_messages)", "{{consumer}}"),
        ),
        row("Acknowledgement"),
        timeseries(
            "From ticket received to acknowledgement written",
            "Median and 90th percentile of the time from a ticket's arrival to its "
            "acknowledgement being written for the client.",
            (quantile(0.5, ack, TENANT), "p50"),
            (quantile(0.9, ack, TENANT), "p90"),
            unit="s",
        ),
        timeseries(
            "Acknowledgement p90, by tenant",
            "The recorded 10-minute p90 per client (tenant:opora_intake_to_ack_seconds:p90_10m).",
            ('tenant:opora_intake_to_ack_seconds:p90_10m{tenant=~"$tenant"}', "{{tenant}}"),
            unit="s",
        ),
        timeseries(
            "Notifications per minute, by channel and outcome",
            "Acknowledgements and other notices the notifier wrote or sent.",
            (
                "sum by (channel, outcome) (rate(opora_notifications_total[$__rate_interval])) "
                "* 60",
                "{{channel}} {{outcome}}",
            ),
        ),
        timeseries(
            "Inbound mail per minute, by outcome",
            "What the intake did with each mail: a ticket, a reply threaded onto one, an "
            "automatic reply, a bounce, a loop, a duplicate...",
            (
                "sum by (channel, outcome) (rate(opora_mail_total[$__rate_interval])) * 60",
                "{{channel}} {{outcome}}",
            ),
        ),
        timeseries(
            "Requests refused, by reason",
            "HTTP requests and mails the intake refused (too large, invalid...), per minute.",
            ("sum by (reason) (rate(opora_intake_rejected_total[$__rate_interval])) * 60", ""),
            width=24,
            height=6,
        ),
    ]
    return dashboard(
        "opora-overview",
        "Opora · Service desk overview",
        "Tickets flowing through intake, classifier and notifier: how many, how fast, what waits.",
        panels,
        [label_variable("tenant", "Tenant", "opora_tickets_received_total")],
    )


def sla() -> dict[str, Any]:
    """SLA: compliance per tenant, warnings vs breaches, volumes per priority, timer lateness."""
    events = "opora_sla_events_total"
    panels = [
        row("Over the selected time range"),
        stat(
            "SLA clocks kept",
            "Share of SLA clocks (first response and resolution, two per ticket) that did not "
            "breach, per tenant, over the selected time range. Approximate: a breach in the "
            "range may belong to a ticket armed before it.",
            (sla_kept("$__range"), "{{tenant}}"),
            unit="percentunit",
            thresholds=SLA_THRESHOLDS,
            decimals=1,
            width=8,
        ),
        stat(
            "Warnings",
            "Clocks that reached the contract's warning threshold (80 % by default).",
            (in_range(events, f'kind="warning", {TENANT}'), "warnings"),
            thresholds=(("text", None), ("orange", 1)),
            width=4,
        ),
        stat(
            "Breaches",
            "Clocks that ran out.",
            (in_range(events, f'kind="breach", {TENANT}'), "breaches"),
            thresholds=(("green", None), ("red", 1)),
            width=4,
        ),
        stat(
            "Escalations",
            "Breaches that escalated to the team lead or account manager.",
            (in_range(events, f'kind="escalation", {TENANT}'), "escalations"),
            thresholds=(("green", None), ("orange", 1)),
            width=4,
        ),
        stat(
            "Tickets on the clock",
            "Tickets whose SLA clocks were armed (classified tickets of tenants with a contract).",
            (in_range("opora_sla_armed_total", TENANT), "armed"),
            width=4,
        ),
        row("Compliance"),
        timeseries(
            "SLA clocks kept, last 24 hours",
            "The recorded daily compliance per tenant (tenant:opora_sla_compliance:ratio1d). "
            "Below 90 % with at least 10 tickets, OporaSlaComplianceLow fires.",
            ('tenant:opora_sla_compliance:ratio1d{tenant=~"$tenant"}', "{{tenant}}"),
            unit="percentunit",
        ),
        bargauge(
            "Tickets on the clock, by tenant and priority",
            "Tickets armed over the selected time range. Compliance per priority needs the "
            "breaches labelled by priority, which the sla-timer does not export yet.",
            (
                in_range("opora_sla_armed_total", TENANT, "tenant, priority"),
                "{{tenant}} {{priority}}",
            ),
            width=12,
        ),
        row("Warnings, breaches, escalations"),
        timeseries(
            "Warnings vs breaches per hour",
            "A warning is the chance to act; a breach is the missed deadline.",
            (
                "sum by (tenant, kind) (rate(opora_sla_events_total"
                f'{{kind=~"warning|breach", {TENANT}}}[$__rate_interval])) * 3600',
                "{{tenant}} {{kind}}",
            ),
            bars=True,
        ),
        timeseries(
            "Escalations per hour",
            "Escalations by tenant (team lead, account manager).",
            (
                f'sum by (tenant) (rate({events}{{kind="escalation", {TENANT}}}'
                "[$__rate_interval])) * 3600",
                "{{tenant}}",
            ),
            bars=True,
        ),
        row("Timers"),
        timeseries(
            "Timer lateness",
            "How long after its due time each SLA timer fired (all tenants). Minutes late "
            "means warnings and breaches come late: see OporaSlaTimersLate.",
            (quantile(0.5, "opora_sla_fire_lateness_seconds", ""), "p50"),
            (quantile(0.99, "opora_sla_fire_lateness_seconds", ""), "p99"),
            unit="s",
        ),
        timeseries(
            "Clocks armed per hour, by priority",
            "Tickets put on the clock per hour, by priority.",
            (
                f"sum by (priority) (rate(opora_sla_armed_total{{{TENANT}}}[$__rate_interval]))"
                " * 3600",
                "{{priority}}",
            ),
            stacked=True,
        ),
    ]
    return dashboard(
        "opora-sla",
        "Opora · SLA",
        "Deadlines kept and missed, per client: compliance, warnings against breaches, "
        "escalations and how punctual the timers are.",
        panels,
        [label_variable("tenant", "Tenant", "opora_sla_armed_total")],
        time_from="now-7d",
    )


def client_value() -> dict[str, Any]:
    """Client value: what was done for each client, and how it fits the contract."""
    classified = "opora_tickets_classified_total"
    panels = [
        row("What we did for the client (selected time range)"),
        stat(
            "Tickets handled",
            "Tickets received and classified for each client.",
            (in_range(classified, TENANT, "tenant"), "{{tenant}}"),
            width=6,
        ),
        stat(
            "SLA clocks kept",
            "Share of SLA clocks kept, per client (first response and resolution).",
            (sla_kept("$__range"), "{{tenant}}"),
            unit="percentunit",
            thresholds=SLA_THRESHOLDS,
            decimals=1,
            width=6,
        ),
        stat(
            "Proactive tickets from monitoring",
            "Tickets opened from the client's monitoring (category monitoring: alerts from "
            "Alertmanager, Grafana, Zabbix) before anybody had to call.",
            (in_range(classified, f'category="monitoring", {TENANT}', "tenant"), "{{tenant}}"),
            width=6,
        ),
        stat(
            "Acknowledged within (p90)",
            "90 % of the client's requests were acknowledged within this time.",
            (
                quantile(0.9, "opora_intake_to_ack_seconds", TENANT, "tenant", "$__range"),
                "{{tenant}}",
            ),
            unit="s",
            width=6,
        ),
        row("Against the contract"),
        piechart(
            "Scope mix",
            "Included in the contract, billable (extra charge, needs the approver's consent), "
            "excluded, or waiting for review.",
            (in_range(classified, TENANT, "scope"), "{{scope}}"),
        ),
        stat(
            "Billable requests",
            "Requests outside the flat fee that need the client approver's consent.",
            (in_range(classified, f'scope="billable", {TENANT}', "tenant"), "{{tenant}}"),
            thresholds=(("blue", None),),
            width=8,
            height=8,
        ),
        bargauge(
            "Billable work: approver's answers",
            "Answers to approval links, by client and outcome (approved, declined).",
            (
                in_range("opora_approvals_total", TENANT, "tenant, outcome"),
                "{{tenant}} {{outcome}}",
            ),
        ),
        row("What the tickets were about"),
        bargauge(
            "Tickets by category",
            "What the client needed help with.",
            (in_range(classified, TENANT, "category"), "{{category}}"),
            width=12,
        ),
        piechart(
            "Tickets by priority",
            "P1 critical, P2 high, P3 normal, P4 low.",
            (in_range(classified, TENANT, "priority"), "{{priority}}"),
            width=12,
        ),
        timeseries(
            "Tickets per hour, by scope",
            "Classified tickets per hour, by how the contract covers them.",
            (
                f"sum by (scope) (rate({classified}{{{TENANT}}}[$__rate_interval])) * 3600",
                "{{scope}}",
            ),
            stacked=True,
            bars=True,
            width=24,
        ),
    ]
    return dashboard(
        "opora-client-value",
        "Opora · Client value",
        "Per client: tickets handled, deadlines kept, what the contract covers and what it "
        "does not, billable work and the problems caught by monitoring before anyone called.",
        panels,
        [label_variable("tenant", "Tenant", classified)],
        time_from="now-30d",
    )


def pipeline() -> dict[str, Any]:
    """Pipeline health: consumers, redeliveries, dead letters, handler latency and errors."""
    processed = "faststream_received_processed_messages"
    published = "faststream_published_messages"
    panels = [
        row("Services"),
        stat(
            "Scraped",
            "Whether Prometheus can scrape each service (OporaServiceDown after 2 minutes).",
            (f'up{{job="opora", {SERVICE}}}', "{{service}}"),
            mappings=UP_MAPPING,
            thresholds=(("red", None), ("green", 1)),
            width=8,
        ),
        stat(
            "JetStream consumer info readable",
            "Whether each service could read its consumers' state from JetStream at the last "
            "refresh (every 5 s).",
            (f"min by (service) (opora_consumer_info_up{{{SERVICE}}})", "{{service}}"),
            mappings=UP_MAPPING,
            thresholds=(("red", None), ("green", 1)),
            width=8,
        ),
        stat(
            "Dead letters",
            "Messages stored on opora.dlq.<consumer> after they could not be handled.",
            (f"max by (consumer) (opora_dead_letters{{{SERVICE}}})", "{{consumer}}"),
            thresholds=(("green", None), ("red", 1)),
            width=8,
        ),
        row("Consumers (read from JetStream)"),
        timeseries(
            "Consumer lag",
            "Messages not yet delivered to each durable consumer. OporaConsumerLag fires above "
            "100 for 10 minutes.",
            (
                f"max by (consumer, stream) (opora_consumer_pending_messages{{{SERVICE}}})",
                "{{consumer}} ({{stream}})",
            ),
            width=8,
        ),
        timeseries(
            "Waiting for acknowledgement",
            "Messages delivered and not yet acknowledged: being handled, or waiting for a retry.",
            (
                f"max by (consumer) (opora_consumer_ack_pending_messages{{{SERVICE}}})",
                "{{consumer}}",
            ),
            width=8,
        ),
        timeseries(
            "Redelivered",
            "Messages delivered more than once and still unacknowledged: a failing or slow "
            "handler.",
            (
                f"max by (consumer) (opora_consumer_redelivered_messages{{{SERVICE}}})",
                "{{consumer}}",
            ),
            width=8,
        ),
        timeseries(
            "Dead letters",
            "Dead letters kept per consumer (90 days). A step up is a message that had no "
            "effect: see OporaDeadLettersIncreasing.",
            (f"max by (consumer) (opora_dead_letters{{{SERVICE}}})", "{{consumer}}"),
            width=24,
            height=6,
        ),
        row("Handlers (FastStream)"),
        timeseries(
            "Handler latency p95",
            "95th percentile of the time a handler takes per message, by service and subject "
            "shape.",
            (
                quantile(0.95, f"{processed}_duration_seconds", APP, "app_name, handler"),
                "{{app_name}} {{handler}}",
            ),
            unit="s",
        ),
        timeseries(
            "Messages handled per second, by status",
            "acked, nacked (retried later), rejected (terminated), error.",
            (
                f"sum by (app_name, status) (rate({processed}_total{{{APP}}}[$__rate_interval]))",
                "{{app_name}} {{status}}",
            ),
            unit="ops",
        ),
        timeseries(
            "Handler exceptions per minute",
            "Exceptions raised by handlers, by type. Each failed attempt counts; the message "
            "is retried with back-off, then dead-lettered.",
            (
                "sum by (app_name, handler, exception_type) "
                f"(rate({processed}_exceptions_total{{{APP}}}[$__rate_interval])) * 60",
                "{{app_name}} {{handler}} {{exception_type}}",
            ),
            bars=True,
        ),
        timeseries(
            "In progress",
            "Messages being handled right now, by service.",
            (
                f"sum by (app_name) (faststream_received_messages_in_process{{{APP}}})",
                "{{app_name}}",
            ),
        ),
        row("Publishing"),
        timeseries(
            "Published per second",
            "Events published to JetStream, by service, subject shape and status.",
            (
                "sum by (app_name, destination, status) "
                f"(rate({published}_total{{{APP}}}[$__rate_interval]))",
                "{{app_name}} {{destination}} {{status}}",
            ),
            unit="ops",
            width=8,
        ),
        timeseries(
            "Publish latency p95",
            "Until JetStream acknowledged the stored event.",
            (
                quantile(0.95, f"{published}_duration_seconds", APP, "app_name"),
                "{{app_name}}",
            ),
            unit="s",
            width=8,
        ),
        timeseries(
            "Publish exceptions per minute",
            "Publishes that failed (NATS unreachable, no stream, timeout).",
            (
                "sum by (app_name, exception_type) "
                f"(rate({published}_exceptions_total{{{APP}}}[$__rate_interval])) * 60",
                "{{app_name}} {{exception_type}}",
            ),
            bars=True,
            width=8,
        ),
        row("Alerts"),
        stat(
            "Firing Opora alerts",
            "Alerts of deploy/prometheus/opora-rules.yml firing now (runbooks in "
            "docs/observability.md).",
            (
                'sum by (alertname, severity) (ALERTS{alertstate="firing", alertname=~"Opora.*"})',
                "{{alertname}} ({{severity}})",
            ),
            thresholds=(("orange", None),),
            width=24,
        ),
    ]
    return dashboard(
        "opora-pipeline",
        "Opora · Pipeline health",
        "The plumbing: services up, consumer lag, redeliveries, dead letters, handler latency "
        "and errors.",
        panels,
        [label_variable("service", "Service", 'up{job="opora"}')],
        time_from="now-3h",
    )


DASHBOARDS = {
    "opora-overview.json": overview,
    "opora-sla.json": sla,
    "opora-client-value.json": client_value,
    "opora-pipeline.json": pipeline,
}


def render() -> dict[str, str]:
    """File name -> the dashboard's JSON text."""
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or with --check report the stale ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 if stale")
    parser.add_argument("--out", type=Path, default=OUT, help="directory of the JSON files")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'} {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
