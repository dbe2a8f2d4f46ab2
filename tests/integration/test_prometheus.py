"""A real Prometheus scrapes a service running in this process and evaluates Opora's rules.

Prometheus runs from Debian's ``prometheus`` package (``scripts/ensure-test-tools`` installs it)
on a free loopback port with a temporary store, from a config derived from
``deploy/prometheus/prometheus.yml`` (1 s scrape and evaluation intervals, the classifier's
metrics endpoint as the only target) and loading ``deploy/prometheus/opora-rules.yml``.
"""

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from opora_classifier.app import create_app
from opora_classifier.settings import ClassifierSettings
from opora_shared.nats.publish import publish_event
from opora_shared.nats.server import free_port
from opora_shared.testing.factories import make_ticket_received
from opora_shared.testing.waiting import poll_until, wait_for
from opora_shared.vocabulary import Category, Priority, Scope

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
RULES = REPO / "deploy" / "prometheus" / "opora-rules.yml"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
PROMETHEUS = shutil.which("prometheus")

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus is not installed (Debian package prometheus; scripts/ensure-test-tools "
    "installs it as root)",
)


@dataclass
class PrometheusHandle:
    """A running Prometheus, and the port its one scrape target is expected on."""

    url: str
    target_port: int

    def query(self, expr: str) -> dict:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        return response.json()


def scrape_config(target_port: int) -> dict:
    """The shipped config with fast intervals, our rules and one target: the classifier."""
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    (opora,) = [job for job in config["scrape_configs"] if job["job_name"] == "opora"]
    opora["static_configs"] = [
        {"targets": [f"127.0.0.1:{target_port}"], "labels": {"service": "classifier"}}
    ]
    config["scrape_configs"] = [opora]
    return config


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[PrometheusHandle]:
    """Prometheus on a free port with a store in a temporary directory, stopped after the module."""
    assert PROMETHEUS is not None
    root = tmp_path_factory.mktemp("prometheus")
    target_port, port = free_port(), free_port()
    config = root / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(target_port)), encoding="utf-8")
    log = (root / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    handle = PrometheusHandle(url=f"http://127.0.0.1:{port}", target_port=target_port)

    def ready() -> bool:
        if process.poll() is not None:
            log.flush()
            pytest.fail(f"prometheus exited: {(root / 'prometheus.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"{handle.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        poll_until(ready, timeout=15, interval=0.1, message="prometheus ready")
        yield handle
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
async def classifier(nats_url, prometheus):
    """The classifier in this process, its registry served where Prometheus scrapes."""
    registry = CollectorRegistry()
    app = create_app(ClassifierSettings(nats_url=nats_url), registry=registry)
    server, thread = start_http_server(prometheus.target_port, addr="127.0.0.1", registry=registry)
    await app.start()
    yield app
    await app.stop()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class TestPrometheus:
    async def test_scrapes_a_business_metric_and_evaluates_the_rules(self, classifier, prometheus):
        tenant = f"p{uuid.uuid4().hex[:8]}"
        received = make_ticket_received(
            tenant=tenant,
            subject="Outlook keeps asking for password",
            body="Since this morning",
            requester={"email": "bob@vector-logistics.com"},
        )
        await publish_event(classifier.broker, received)

        async with httpx.AsyncClient(base_url=prometheus.url, timeout=5) as http:

            async def api(path: str, **params: str):
                answer = (await http.get(f"/api/v1/{path}", params=params)).json()
                assert answer["status"] == "success", answer
                return answer["data"]

            async def classified():
                query = f'opora_tickets_classified_total{{tenant="{tenant}"}}'
                return (await api("query", query=query))["result"]

            (series,) = await wait_for(classified, timeout=15, interval=0.2, message="scraped")
            labels = series["metric"]
            assert labels["job"] == "opora"
            assert labels["service"] == "classifier"
            assert labels["category"] in set(Category)
            assert labels["scope"] in set(Scope)
            assert labels["priority"] in set(Priority)
            assert float(series["value"][1]) == 1

            # FastStream's handler metrics carry the subject's shape, not the ticket or tenant.
            handled = await api(
                "query",
                query='faststream_received_processed_messages_total{app_name="classifier", '
                'handler="opora.ev.*.ticket.*.received"}',
            )
            assert handled["result"]
            everything = await api("series", **{"match[]": '{job="opora"}'})
            assert received.ticket_id not in {v for s in everything for v in s.values()}
            assert "bob@" not in json.dumps(everything)

            async def rules_evaluated():
                groups = (await api("rules"))["groups"]
                rules = [rule for group in groups for rule in group["rules"]]
                return rules if all(rule["health"] != "unknown" for rule in rules) else None

            rules = await wait_for(rules_evaluated, timeout=10, interval=0.2, message="rules run")
        assert {rule["health"] for rule in rules} == {"ok"}, [
            (rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"
        ]
        shipped = yaml.safe_load(RULES.read_text(encoding="utf-8"))
        names = {r.get("alert") or r.get("record") for g in shipped["groups"] for r in g["rules"]}
        assert {rule["name"] for rule in rules} == names

    def test_every_dashboard_query_runs(self, prometheus):
        substitutions = {
            "$__rate_interval": "1m",
            "$__range": "5m",
            "$tenant": ".*",
            "$service": ".*",
        }
        failures = []
        for path in sorted(DASHBOARDS.glob("*.json")):
            dashboard = json.loads(path.read_text(encoding="utf-8"))
            for panel in dashboard["panels"]:
                for target in panel.get("targets", []):
                    expr = target["expr"]
                    for variable, value in substitutions.items():
                        expr = expr.replace(variable, value)
                    answer = prometheus.query(expr)
                    if answer["status"] != "success":
                        failures.append((path.name, panel["title"], answer.get("error")))
        assert failures == []
