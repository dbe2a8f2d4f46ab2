"""Every metric a dashboard or rule queries is really exported, with bounded labels only.

The PromQL of the Grafana dashboards (panels and variables) and of the Prometheus rules is read
for the series names and labels it uses; the names are compared with what the four services
register when they are built (``create_app(settings, registry=...)``), plus ``up`` and
``ALERTS``, which Prometheus makes itself, and the rules' own recorded series.
"""

import re

import pytest

from opora_shared.vocabulary import Category, Channel, Priority, Scope

# PromQL words that look like identifiers but name no series.
KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.I)
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
MATCHERS = re.compile(r"\{([^}]*)\}")
MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
RANGE = re.compile(r"\[[^\]]*\]")
IDENTIFIER = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$")

# Labels that would carry personal data or unbounded ids into Prometheus.
PERSONAL = {
    "email",
    "address",
    "from",
    "to",
    "sender",
    "recipient",
    "requester",
    "name",
    "user",
    "phone",
    "subject",
    "body",
    "ticket",
    "ticket_id",
    "message_id",
    "event_id",
    "ip",
}

# Label values the queries compare against, from the shared vocabulary.
VALUES = {
    "category": {c.value for c in Category},
    "scope": {s.value for s in Scope},
    "priority": {p.value for p in Priority},
    "channel": {c.value for c in Channel},
    "kind": {"warning", "breach", "escalation"},  # opora_sla_events_total
}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression (or a Grafana label_values query) selects."""
    found = LABEL_VALUES.match(expr)
    if found:
        expr = found.group(1)
    text = STRING.sub('""', expr)
    text = MATCHERS.sub(" ", text)
    text = RANGE.sub(" ", text)
    text = GROUPING.sub(" ", text)
    names = set()
    for match in IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in KEYWORDS:
            continue  # a function or aggregation, or a keyword
        names.add(word)
    return names


def label_uses(expr: str) -> tuple[set[str], list[tuple[str, str, str]]]:
    """Labels a PromQL expression names (grouping and matchers), and its matchers."""
    found = LABEL_VALUES.match(expr)
    labels = {found.group(2)} if found else set()
    matchers = []
    for block in MATCHERS.findall(expr):
        for label, op, value in MATCHER.findall(block):
            matchers.append((label, op, value))
            labels.add(label)
    for clause in GROUPING.findall(STRING.sub('""', expr)):
        labels.update(label.strip() for label in clause.split(",") if label.strip())
    return labels, matchers


def unknown(names: set[str], exported: set[str], recorded: set[str]) -> set[str]:
    """Names neither exported by a service nor recorded by a rule."""
    return {n for n in names if n not in exported and n not in recorded}


@pytest.fixture(scope="module")
def recorded(rules) -> set[str]:
    return {rule["record"] for rule in rules if "record" in rule}


class TestExtractor:
    def test_finds_metrics_not_functions_labels_or_durations(self):
        expr = (
            "histogram_quantile(0.9, sum by (tenant, le) "
            '(rate(opora_intake_to_ack_seconds_bucket{tenant=~"$tenant"}[$__rate_interval])))'
            " > 1e3 and on (tenant) tenant:opora_sla_armed:increase1d offset 5m"
            ' or vector(0) unless ignoring (kind) up{job="opora"} == bool 0'
        )
        assert metric_names(expr) == {
            "opora_intake_to_ack_seconds_bucket",
            "tenant:opora_sla_armed:increase1d",
            "up",
        }

    def test_reads_grafana_label_values_queries(self):
        assert metric_names('label_values(up{job="opora"}, service)') == {"up"}
        labels, matchers = label_uses('label_values(up{job="opora"}, service)')
        assert labels == {"job", "service"}
        assert matchers == [("job", "=", "opora")]

    def test_a_metric_that_nobody_exports_is_reported(self, exported, recorded):
        expr = 'sum by (tenant) (rate(opora_tickets_teleported_total{tenant=~"$tenant"}[5m]))'
        names = metric_names(expr)
        assert names == {"opora_tickets_teleported_total"}
        assert unknown(names, set(exported.labels), recorded) == names

    def test_a_counter_needs_its_total_suffix_and_a_histogram_its_bucket(self, exported):
        assert "opora_tickets_classified_total" in exported.labels
        assert "opora_tickets_classified" not in exported.labels
        assert "opora_intake_to_ack_seconds_bucket" in exported.labels
        assert "opora_intake_to_ack_seconds" not in exported.labels

    def test_finds_labels_in_matchers_and_grouping(self):
        labels, matchers = label_uses(
            'sum by (tenant, priority) (increase(x{kind="breach", scope!~"a|b"}[1h]))'
        )
        assert labels == {"tenant", "priority", "kind", "scope"}
        assert ("kind", "=", "breach") in matchers


class TestEverythingQueriedIsExported:
    def test_the_services_export_what_the_issue_asks_for(self, exported):
        expected = {
            "opora_tickets_received_total": {"intake"},
            "opora_tickets_classified_total": {"classifier"},
            "opora_sla_events_total": {"sla-timer"},
            "opora_sla_fire_lateness_seconds_bucket": {"sla-timer"},
            "opora_notifications_total": {"notifier"},
            "opora_intake_to_ack_seconds_bucket": {"notifier"},
            "faststream_received_processed_messages_duration_seconds_bucket": {
                "intake",
                "classifier",
                "sla-timer",
                "notifier",
            },
        }
        for name, services in expected.items():
            assert services <= exported.services.get(name, set()), name
        assert "opora_consumer_pending_messages" in exported.labels
        assert "opora_dead_letters" in exported.labels

    def test_every_metric_queried_by_a_dashboard_or_rule_is_exported(
        self, queries, exported, recorded
    ):
        missing = {
            where: sorted(unknown(metric_names(expr), set(exported.labels), recorded))
            for where, expr in queries
        }
        assert {where: names for where, names in missing.items() if names} == {}

    def test_every_query_selects_at_least_one_metric(self, queries):
        assert [where for where, expr in queries if not metric_names(expr)] == []

    def test_every_label_queried_exists_on_some_exported_metric(self, queries, exported):
        known = exported.all_labels | {"__name__"}
        strays = {}
        for where, expr in queries:
            labels, _ = label_uses(expr)
            if labels - known:
                strays[where] = sorted(labels - known)
        assert strays == {}

    def test_label_values_compared_exactly_are_real_values(self, queries):
        wrong = []
        for where, expr in queries:
            for label, op, value in label_uses(expr)[1]:
                if op in ("=", "!=") and label in VALUES and value not in VALUES[label]:
                    wrong.append((where, label, value))
        assert wrong == []


class TestNoPersonalDataInLabels:
    def test_no_query_uses_a_personal_label(self, queries, dashboards):
        used = set()
        for _, expr in queries:
            used |= label_uses(expr)[0]
        for dashboard in dashboards.values():
            for panel in dashboard["panels"]:
                for target in panel.get("targets", []):
                    used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"]))
        assert used & PERSONAL == set()

    def test_no_alert_annotation_prints_a_personal_label(self, rules, exported):
        for rule in rules:
            for text in rule.get("annotations", {}).values():
                labels = set(re.findall(r"\$labels\.(\w+)", text))
                assert labels & PERSONAL == set(), rule["alert"]
                assert labels <= exported.all_labels, rule["alert"]

    def test_no_service_exports_a_personal_label(self, exported):
        offending = {
            name: sorted(labels & PERSONAL)
            for name, labels in exported.labels.items()
            if labels & PERSONAL
        }
        assert offending == {}
