"""The Grafana dashboards are generated, tidy, and provisioned the way Grafana expects."""

from pathlib import Path

import yaml

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def all_panels(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variables(dashboard):
    return {v["name"]: v for v in dashboard["templating"]["list"]}


class TestGenerated:
    def test_committed_json_is_what_the_generator_writes(self, generator, dashboards):
        rendered = generator.render()
        stale = [
            name
            for name, text in rendered.items()
            if (GRAFANA / "dashboards" / name).read_text(encoding="utf-8") != text
        ]
        assert stale == [], "run: python deploy/grafana/generate.py (and commit)"
        assert sorted(rendered) == sorted(dashboards)

    def test_the_check_mode_reports_a_stale_file(self, generator, tmp_path):
        assert generator.main(["--out", str(tmp_path)]) == 0
        assert generator.main(["--out", str(tmp_path), "--check"]) == 0
        (tmp_path / "opora-sla.json").write_text("{}\n", encoding="utf-8")
        assert generator.main(["--out", str(tmp_path), "--check"]) == 1


class TestDashboards:
    def test_the_four_dashboards_of_the_issue(self, dashboards):
        titles = {d["title"] for d in dashboards.values()}
        assert titles == {
            "Opora · Service desk overview",
            "Opora · SLA",
            "Opora · Client value",
            "Opora · Pipeline health",
        }
        uids = [d["uid"] for d in dashboards.values()]
        assert len(set(uids)) == len(uids)
        assert all(len(uid) <= 40 for uid in uids)

    def test_business_dashboards_filter_by_tenant(self, dashboards):
        for dashboard in dashboards.values():
            if dashboard["uid"] == "opora-pipeline":
                assert "service" in variables(dashboard)
                continue
            tenant = variables(dashboard)["tenant"]
            assert tenant["multi"]
            assert tenant["includeAll"]
            for panel in all_panels(dashboard):
                for target in panel.get("targets", []):
                    expr = target["expr"]
                    if "tenant" in expr:
                        assert 'tenant=~"$tenant"' in expr, (panel["title"], expr)

    def test_every_query_uses_the_datasource_variable(self, dashboards):
        for dashboard in dashboards.values():
            assert dashboard["schemaVersion"] >= 39
            assert variables(dashboard)["datasource"]["query"] == "prometheus"
            for panel in all_panels(dashboard):
                if panel["type"] == "row":
                    continue
                assert panel["datasource"] == DATASOURCE, panel["title"]
                assert all(t["datasource"] == DATASOURCE for t in panel["targets"])
                assert panel["description"], panel["title"]

    def test_panels_have_unique_ids_and_fit_the_grid(self, dashboards):
        for dashboard in dashboards.values():
            panels = list(all_panels(dashboard))
            ids = [p["id"] for p in panels]
            assert len(set(ids)) == len(ids)
            for panel in panels:
                pos = panel["gridPos"]
                assert pos["x"] + pos["w"] <= 24, panel["title"]
            cells = set()
            for panel in panels:
                pos = panel["gridPos"]
                for x in range(pos["x"], pos["x"] + pos["w"]):
                    for y in range(pos["y"], pos["y"] + pos["h"]):
                        assert (x, y) not in cells, f"{panel['title']} overlaps"
                        cells.add((x, y))


class TestProvisioning:
    def test_the_datasource_has_the_uid_the_dashboards_default_to(self, dashboards):
        config = yaml.safe_load(
            (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
        )
        (source,) = config["datasources"]
        assert source["type"] == "prometheus"
        for dashboard in dashboards.values():
            assert variables(dashboard)["datasource"]["current"]["value"] == source["uid"]

    def test_the_dashboard_provider_reads_a_directory(self):
        config = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "opora.yml").read_text())
        (provider,) = config["providers"]
        assert provider["type"] == "file"
        assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
