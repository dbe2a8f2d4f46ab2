"""Every alert is actionable: severity, summary, description, a runbook that exists, and tests.

``promtool test rules`` itself runs in ``make test-rules``; here the test file is only read, to
check that each alert is shown both firing and staying quiet.
"""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULE_TESTS = PROMETHEUS_DIR / "opora-rules-test.yml"
SEVERITIES = {"critical", "warning", "info"}
RUNBOOK = REPO / "docs" / "observability.md"


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text."""
    found = set()
    for heading in re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.fixture(scope="module")
def alerts(rules):
    return [rule for rule in rules if "alert" in rule]


@pytest.fixture(scope="module")
def rule_tests():
    return yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]


class TestAlerts:
    def test_the_issue_s_alerts_exist(self, alerts):
        names = {alert["alert"] for alert in alerts}
        assert {
            "OporaServiceDown",
            "OporaSlaBreachesHigh",
            "OporaTicketBacklogGrowing",
            "OporaConsumerLag",
            "OporaDeadLettersIncreasing",
            "OporaDeadLettersPresent",
            "OporaAcknowledgementSlow",
        } <= names

    def test_every_alert_has_a_severity_summary_description_and_runbook(self, alerts):
        for alert in alerts:
            assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
            annotations = alert["annotations"]
            assert set(annotations) == {"summary", "description", "runbook"}, alert["alert"]
            assert all(text.strip() for text in annotations.values()), alert["alert"]

    def test_every_runbook_points_at_a_section_of_the_observability_doc(self, alerts):
        headings = anchors(RUNBOOK.read_text(encoding="utf-8"))
        for alert in alerts:
            path, _, anchor = alert["annotations"]["runbook"].partition("#")
            assert path == "docs/observability.md", alert["alert"]
            assert anchor == alert["alert"].lower(), alert["alert"]
            assert anchor in headings, f"no section '{alert['alert']}' in {RUNBOOK}"

    def test_alert_names_are_unique(self, alerts):
        names = [alert["alert"] for alert in alerts]
        assert len(names) == len(set(names))


class TestRuleUnitTests:
    def test_the_file_names_match_what_make_test_rules_runs(self):
        assert RULE_TESTS.match("*test*.yml")
        assert [p.name for p in PROMETHEUS_DIR.glob("*rules*.yml") if "test" not in p.name] == [
            "opora-rules.yml"
        ]

    def test_every_alert_is_shown_firing_and_not_firing(self, alerts, rule_tests):
        firing, quiet = set(), set()
        for test in rule_tests:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
        names = {alert["alert"] for alert in alerts}
        assert names - firing == set(), "alerts never shown firing"
        assert names - quiet == set(), "alerts never shown staying quiet"

    def test_firing_cases_check_the_rendered_annotations(self, rule_tests):
        for test in rule_tests:
            for case in test.get("alert_rule_test", []):
                for expected in case.get("exp_alerts") or []:
                    assert "severity" in expected["exp_labels"], test["name"]
                    assert "summary" in expected["exp_annotations"], test["name"]
