"""Other tools' alerts read into one signal and rendered for people and the classifier.

The Alertmanager payloads and the PagerDuty example come from the real-world corpus
(../shared/corpus/alert-payloads); every one must be read.
"""

import copy
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from opora_classifier.priority import ALERT_SIGNALS
from opora_intake.integrations.models import (
    AlertmanagerWebhook,
    IntegrationEvent,
    PagerDutyEvent,
)
from opora_intake.integrations.normalize import (
    event_fields_from_cloudevent,
    from_alertmanager,
    from_event,
    from_pagerduty,
    requester_address,
    severity_line,
    source_name,
    worst_severity,
)

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus" / "alert-payloads"
ALERTMANAGER_FILES = sorted(
    p for p in CORPUS.rglob("*.json") if "pagerduty-api-schema" not in p.parts
)
PAGERDUTY_SPEC = CORPUS / "pagerduty-api-schema" / "reference" / "events-v2" / "openapiv3.json"


def pagerduty_example() -> dict:
    """The example event of PagerDuty's own Events API v2 specification."""
    spec = json.loads(PAGERDUTY_SPEC.read_text(encoding="utf-8"))
    body = spec["paths"]["/enqueue"]["post"]["requestBody"]["content"]["application/json"]
    return copy.deepcopy(body["examples"]["event"]["value"])


def alert_level(subject: str, body: str) -> str | None:
    """The priority the classifier's alert signals give this text (the first that matches)."""
    text = " ".join(f"{subject}. {body}".lower().replace("ё", "е").split())
    return next((str(s.level) for s in ALERT_SIGNALS if s.pattern.search(text)), None)


def test_the_corpus_has_the_alert_payloads():
    assert len(ALERTMANAGER_FILES) == 12, [p.name for p in ALERTMANAGER_FILES]
    assert PAGERDUTY_SPEC.exists()


class TestAlertmanager:
    @pytest.mark.parametrize("path", ALERTMANAGER_FILES, ids=lambda p: p.name)
    def test_every_corpus_payload_is_one_readable_signal(self, path):
        payload = AlertmanagerWebhook.model_validate_json(path.read_bytes())
        signal = from_alertmanager(payload)
        assert signal.action == "trigger"
        assert signal.source == "alertmanager"
        assert signal.dedup_key == payload.groupKey
        assert signal.subject.startswith("[FIRING:")
        assert "Labels:" in signal.body
        assert not re.search(r"\bresolved\b|\bok:", signal.body.lower())
        assert len(signal.body) <= 100_000

    def test_severity_and_summary_reach_the_text(self):
        path = next(p for p in ALERTMANAGER_FILES if p.name == "prom_post_request_2_alerts.json")
        signal = from_alertmanager(AlertmanagerWebhook.model_validate_json(path.read_bytes()))
        assert signal.subject == "[FIRING:2] high_memory_load: Server High Memory usage"
        assert "Severity: warning" in signal.body
        assert " - description = 10.80.40.12 reported high memory usage with 61.54%." in signal.body
        assert alert_level(signal.subject, signal.body) == "P3"

    def test_a_critical_alert_reads_as_p2_and_a_host_down_as_p1(self):
        payload = {
            "status": "firing",
            "groupKey": '{}:{alertname="X"}',
            "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
            "alerts": [{"labels": {"alertname": "DiskFull", "severity": "critical"}}],
        }
        signal = from_alertmanager(AlertmanagerWebhook.model_validate(payload))
        assert alert_level(signal.subject, signal.body) == "P2"
        payload["commonLabels"]["alertname"] = "HostDown"
        signal = from_alertmanager(AlertmanagerWebhook.model_validate(payload))
        assert alert_level(signal.subject, signal.body) == "P1"

    def test_resolved_resolves_the_group(self):
        path = next(p for p in ALERTMANAGER_FILES if p.name == "prom_post_request_2_alerts.json")
        data = json.loads(path.read_text())
        data["status"] = "resolved"
        signal = from_alertmanager(AlertmanagerWebhook.model_validate(data))
        assert (signal.action, signal.dedup_key) == ("resolve", data["groupKey"])

    def test_grafana_alerting_is_read_as_grafana(self):
        # Grafana's webhook: the Alertmanager format plus orgId, title, state, message and,
        # per alert, silenceURL, dashboardURL, panelURL, values and valueString.
        grafana = {
            "receiver": "opora",
            "status": "firing",
            "orgId": 1,
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "HighCPU", "grafana_folder": "Servers"},
                    "annotations": {"summary": "CPU above 95% on srv-app01"},
                    "startsAt": "2024-05-12T02:10:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "https://grafana.example/alerting/grafana/abc/view",
                    "fingerprint": "0f1b2c",
                    "silenceURL": "https://grafana.example/alerting/silence/new",
                    "dashboardURL": "",
                    "panelURL": "",
                    "values": {"A": 97.3},
                    "valueString": "[ var='A' labels={instance=srv-app01} value=97.3 ]",
                }
            ],
            "groupLabels": {"alertname": "HighCPU"},
            "commonLabels": {"alertname": "HighCPU", "severity": "warning"},
            "commonAnnotations": {"summary": "CPU above 95% on srv-app01"},
            "externalURL": "https://grafana.example/",
            "version": "1",
            "groupKey": '{}/{}:{alertname="HighCPU"}',
            "truncatedAlerts": 0,
            "title": "[FIRING:1] HighCPU Servers",
            "state": "alerting",
            "message": "**Firing**\n\nValue: A=97.3",
        }
        signal = from_alertmanager(AlertmanagerWebhook.model_validate(grafana))
        assert signal.source == "grafana"
        assert "Values: [ var='A' labels={instance=srv-app01} value=97.3 ]" in signal.body

    def test_a_payload_without_group_key_names_the_field(self):
        with pytest.raises(ValidationError) as caught:
            AlertmanagerWebhook.model_validate({"status": "firing", "alerts": []})
        assert caught.value.errors()[0]["loc"] == ("groupKey",)


class TestPagerDuty:
    def test_the_specifications_example_is_a_critical_trigger(self):
        event = PagerDutyEvent.model_validate(pagerduty_example())
        signal = from_pagerduty(event, event.dedup_key or "")
        assert (signal.action, signal.source, signal.dedup_key) == (
            "trigger",
            "pagerduty",
            "srv01/mysql",
        )
        assert signal.subject == "DISK at 99% on machine prod-datapipe03.example.com"
        assert "Severity: critical" in signal.body
        assert " - free space = 1%" in signal.body
        assert "Component: mysql" in signal.body
        assert alert_level(signal.subject, signal.body) == "P2"

    @pytest.mark.parametrize("action", ["acknowledge", "resolve"])
    def test_acknowledge_and_resolve_need_no_payload(self, action):
        event = PagerDutyEvent.model_validate(
            {"routing_key": "k", "event_action": action, "dedup_key": "srv01/mysql"}
        )
        assert from_pagerduty(event, "srv01/mysql").action == action


class TestGenericEvent:
    def test_severity_and_details_are_rendered(self):
        event = IntegrationEvent(
            source="zabbix",
            dedup_key="srv-db01/disk",
            summary="Free disk space is less than 5% on srv-db01",
            severity="disaster",
            resource="srv-db01",
            details={"trigger": "disk C:", "value": 3.2},
        )
        signal = from_event(event)
        assert signal.subject == event.summary
        assert "Severity: disaster" in signal.body
        assert " - value = 3.2" in signal.body
        assert alert_level(signal.subject, signal.body) == "P1"

    def test_unknown_fields_are_refused_by_name(self):
        with pytest.raises(ValidationError) as caught:
            IntegrationEvent.model_validate(
                {"source": "x", "dedup_key": "k", "summary": "s", "colour": "red"}
            )
        assert caught.value.errors()[0]["loc"] == ("colour",)


class TestCloudEvents:
    def test_data_with_the_generic_fields_wins(self):
        fields = event_fields_from_cloudevent(
            {"id": "e1", "source": "/zabbix", "type": "com.zabbix.problem", "specversion": "1.0"},
            {
                "source": "zabbix",
                "dedup_key": "p-1",
                "summary": "Disk full",
                "severity": "disaster",
                "host": "srv1",
            },
        )
        event = IntegrationEvent.model_validate(fields)
        assert (event.source, event.dedup_key, event.summary, event.action) == (
            "zabbix",
            "p-1",
            "Disk full",
            "trigger",
        )
        assert event.details["host"] == "srv1"
        assert event.details["cloudevent type"] == "com.zabbix.problem"

    def test_attributes_fill_what_data_lacks(self):
        fields = event_fields_from_cloudevent(
            {
                "id": "e2",
                "source": "https://mon.example/ce",
                "type": "com.example.alert.resolved",
                "subject": "srv-db01 disk",
                "severity": "warning",
            },
            None,
        )
        event = IntegrationEvent.model_validate(fields)
        assert (event.source, event.dedup_key, event.summary, event.action, event.severity) == (
            "https://mon.example/ce",
            "srv-db01 disk",
            "srv-db01 disk",
            "resolve",
            "warning",
        )


class TestSeverity:
    @pytest.mark.parametrize(
        ("word", "line", "level"),
        [
            ("disaster", "Severity: disaster", "P1"),
            ("critical", "Severity: critical", "P2"),
            ("error", "Severity: error (critical)", "P2"),
            ("High", "Severity: High (critical)", "P2"),
            ("page", "Severity: page (critical)", "P2"),
            ("warning", "Severity: warning", "P3"),
            ("average", "Severity: average (warning)", "P3"),
            ("info", "Severity: info", "P4"),
            ("low", "Severity: low (informational)", "P4"),
            ("p-custom", "Severity: p-custom", None),
        ],
    )
    def test_the_tools_word_and_the_reading_the_classifier_sees(self, word, line, level):
        assert severity_line(word) == line
        assert alert_level("an alert", line) == level


class TestNames:
    @pytest.mark.parametrize(
        ("source", "name"),
        [
            ("alertmanager", "alertmanager"),
            ("https://grafana.example.com/alerting", "grafana.example.com"),
            ("/zabbix/host1", "zabbix"),
            ("urn:monitoring:veeam", "veeam"),
            ("Мониторинг!!", "integration"),
        ],
    )
    def test_source_names_are_address_safe(self, source, name):
        assert source_name(source) == name

    def test_the_requester_is_the_source_under_the_tenant(self):
        assert requester_address("alertmanager", "romashka") == "alertmanager@romashka"

    def test_the_worst_severity_wins(self):
        assert worst_severity(["warning", "critical", ""]) == "critical"
        assert worst_severity(["", ""]) is None
