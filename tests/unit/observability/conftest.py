"""What the observability tests read: the dashboards, the rules and the metrics really exported."""

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
GRAFANA_DIR = REPO / "deploy" / "grafana"
RULES = PROMETHEUS_DIR / "opora-rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "opora-rules-test.yml"

# Series a Prometheus makes itself, and the labels it adds to every scraped sample.
SYNTHETIC = {
    "up": ("job", "instance", "service"),
    "ALERTS": ("alertname", "alertstate", "severity"),
}
TARGET_LABELS = ("job", "instance", "service")

# How each metric type appears in the exposition format.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


@dataclass
class Catalogue:
    """Every series name the services export, with its labels, by service."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    services: dict[str, set[str]] = field(default_factory=dict)

    def add(self, service: str, registry: CollectorRegistry) -> None:
        # prometheus_client keeps a metric's label names only in `_labelnames`: a labelled
        # metric without samples yet (every one, right after start) shows no labels otherwise.
        for collector in list(registry._collector_to_names):
            labelnames = set(getattr(collector, "_labelnames", ()))
            for family in collector.describe():
                for suffix in SUFFIXES[family.type]:
                    name = family.name + suffix
                    extra = {"le"} if suffix == "_bucket" else set()
                    self.labels.setdefault(name, set()).update(labelnames | extra)
                    self.services.setdefault(name, set()).add(service)

    @property
    def all_labels(self) -> set[str]:
        return set().union(*self.labels.values())


def _apps() -> dict[str, Any]:
    from opora_classifier.app import create_app as classifier_app
    from opora_classifier.settings import ClassifierSettings
    from opora_intake.app import create_app as intake_app
    from opora_intake.settings import IntakeSettings
    from opora_notifier.app import create_app as notifier_app
    from opora_notifier.settings import NotifierSettings
    from opora_sla_timer.app import create_app as sla_app
    from opora_sla_timer.settings import SlaTimerSettings

    return {
        "intake": (intake_app, IntakeSettings),
        "classifier": (classifier_app, ClassifierSettings),
        "sla-timer": (sla_app, SlaTimerSettings),
        "notifier": (notifier_app, NotifierSettings),
    }


@pytest.fixture(scope="session")
def exported() -> Catalogue:
    """What the four services register, built the way their ``__main__`` builds them."""
    catalogue = Catalogue()
    for service, (create_app, settings_cls) in _apps().items():
        registry = CollectorRegistry()
        create_app(settings_cls(nats_url="nats://127.0.0.1:4222"), registry=registry)
        catalogue.add(service, registry)
    for name, labels in SYNTHETIC.items():
        catalogue.labels[name] = set(labels)
        catalogue.services[name] = {"prometheus"}
    for name in list(catalogue.labels):
        if name not in SYNTHETIC:
            catalogue.labels[name].update(TARGET_LABELS)
    return catalogue


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    """deploy/grafana/generate.py, imported from its path (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "opora_grafana_generate", GRAFANA_DIR / "generate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    """The committed dashboards, by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    }


@pytest.fixture(scope="session")
def rules() -> list[dict[str, Any]]:
    """Every rule (recording and alerting) of deploy/prometheus/*rules*.yml."""
    found = []
    for path in sorted(PROMETHEUS_DIR.glob("*rules*.yml")):
        if "test" in path.name:
            continue
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            found.extend(group["rules"])
    return found


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


@pytest.fixture(scope="session")
def queries(dashboards, rules) -> list[tuple[str, str]]:
    """(where, PromQL) for every query of the dashboards (panels and variables) and rules."""
    found = []
    for name, dashboard in dashboards.items():
        for panel in panels_of(dashboard):
            for target in panel.get("targets", []):
                found.append((f"{name}: {panel['title']}", target["expr"]))
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                found.append((f"{name}: ${variable['name']}", variable["definition"]))
    for rule in rules:
        found.append((f"rule {rule.get('record') or rule.get('alert')}", str(rule["expr"])))
    return found
