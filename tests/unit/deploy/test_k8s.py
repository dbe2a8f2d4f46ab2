"""deploy/k8s/: the manifests describe a highly available Opora that agrees with the code.

Every Deployment has 2+ replicas, probes, requests and limits and a PodDisruptionBudget; NATS is
a 3-node JetStream cluster started with the flags the cluster test runs; the provision Job asks
for as many stream replicas as there are nodes; commands, settings and ports agree with the code,
images with the compose file.
"""

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from deploy_files import (
    K8S_DIR,
    REPO,
    SERVICES,
    SETTINGS,
    console_scripts,
    default,
    is_setting,
    project_version,
)

from opora_shared.cli import build_parser
from opora_shared.nats.deadletter import backoff_s
from opora_shared.nats.server import NatsServer

KINDS = {
    "Namespace",
    "Service",
    "StatefulSet",
    "Deployment",
    "PodDisruptionBudget",
    "ConfigMap",
    "Job",
    "PersistentVolumeClaim",
}


def of_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The documents of one kind, by name."""
    return {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == kind}


def pod_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """Init and regular containers of a workload's pod template."""
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def config_map_data(manifests: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The data of a ConfigMap written in the manifests."""
    return dict(of_kind(manifests, "ConfigMap")[name]["data"])


def container_env(manifests: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """Every environment variable a container gets (envFrom ConfigMaps, then env)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= config_map_data(manifests, source["configMapRef"]["name"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", "<from secret>")
    return env


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """True when a matchLabels selector selects these labels."""
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


def generated(kustomization: dict[str, Any], key: str) -> dict[str, dict[str, Path]]:
    """Generated ConfigMaps or Secrets: name -> {key: source file}."""
    found: dict[str, dict[str, Path]] = {}
    for generator in kustomization.get(key, []):
        files = {}
        for entry in generator["files"]:
            name, _, source = entry.partition("=")
            files[name if source else Path(name).name] = K8S_DIR / (source or name)
        found[generator["name"]] = files
    return found


@pytest.fixture(scope="module")
def deployments(manifests) -> dict[str, dict[str, Any]]:
    return of_kind(manifests, "Deployment")


@pytest.fixture(scope="module")
def nats(manifests) -> dict[str, Any]:
    return of_kind(manifests, "StatefulSet")["nats"]


class TestManifests:
    def test_the_kustomization_lists_every_manifest(self, kustomization):
        files = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
        assert set(kustomization["resources"]) == files

    def test_every_document_is_a_known_kind_with_a_name(self, manifests):
        for doc in manifests:
            assert doc["kind"] in KINDS, doc["kind"]
            assert doc["apiVersion"]
            assert doc["metadata"]["name"]

    def test_every_object_is_labelled_part_of_opora(self, manifests):
        for doc in manifests:
            labels = doc["metadata"].get("labels", {})
            if doc["kind"] != "Namespace":
                assert labels.get("app.kubernetes.io/part-of") == "opora", doc["metadata"]["name"]

    def test_the_four_services_are_deployments(self, deployments):
        assert set(deployments) == set(SERVICES)


class TestDeployments:
    def test_several_replicas(self, deployments):
        for name, deployment in deployments.items():
            assert deployment["spec"]["replicas"] >= 2, name

    def test_every_container_has_liveness_and_readiness_probes(self, deployments):
        for name, deployment in deployments.items():
            for container in pod_containers(deployment):
                assert "livenessProbe" in container, name
                assert "readinessProbe" in container, name

    def test_probes_ask_named_ports_of_the_container(self, deployments):
        for name, deployment in deployments.items():
            for container in pod_containers(deployment):
                ports = {p["name"] for p in container.get("ports", [])}
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if probe in container:
                        assert container[probe]["httpGet"]["port"] in ports, f"{name} {probe}"

    def test_the_intake_is_ready_only_when_nats_and_its_streams_are(self, deployments):
        (container,) = pod_containers(deployments["intake"])
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"

    def test_every_container_has_cpu_and_memory_requests_and_limits(self, manifests):
        for workload in [
            *of_kind(manifests, "Deployment").values(),
            *of_kind(manifests, "StatefulSet").values(),
            *of_kind(manifests, "Job").values(),
        ]:
            for container in pod_containers(workload):
                resources = container["resources"]
                for bound in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(resources[bound]), container["name"]

    def test_a_disruption_budget_selects_every_deployment_and_lets_a_node_drain(
        self, manifests, deployments
    ):
        budgets = of_kind(manifests, "PodDisruptionBudget").values()
        for name, deployment in deployments.items():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            matching = [b for b in budgets if selects(b["spec"]["selector"], labels)]
            assert len(matching) == 1, f"{name}: {len(matching)} budgets"
            assert matching[0]["spec"]["minAvailable"] < deployment["spec"]["replicas"]

    def test_selectors_select_their_own_pods(self, deployments, nats):
        for workload in [*deployments.values(), nats]:
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert selects(workload["spec"]["selector"], labels)

    def test_pods_run_as_non_root_without_privileges(self, manifests):
        for workload in [
            *of_kind(manifests, "Deployment").values(),
            *of_kind(manifests, "StatefulSet").values(),
            *of_kind(manifests, "Job").values(),
        ]:
            pod = workload["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] != 0
            for container in pod_containers(workload):
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False
                assert context["capabilities"]["drop"] == ["ALL"]

    def test_each_runs_its_own_console_script(self, deployments):
        scripts = console_scripts()
        for name, deployment in deployments.items():
            (container,) = pod_containers(deployment)
            assert container["command"] == [SERVICES[name]]
            assert SERVICES[name] in scripts

    def test_environment_names_are_real_settings(self, manifests):
        for workload in [
            *of_kind(manifests, "Deployment").values(),
            *of_kind(manifests, "Job").values(),
        ]:
            for container in pod_containers(workload):
                settings = SETTINGS[container["command"][0]]
                for env_name in container_env(manifests, container):
                    assert is_setting(settings, env_name), f"{container['name']}: {env_name}"

    def test_ports_are_the_settings_defaults(self, deployments):
        for name, deployment in deployments.items():
            settings = SETTINGS[SERVICES[name]]
            (container,) = pod_containers(deployment)
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports["metrics"] == default(settings, "metrics_port")
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/port"] == str(ports["metrics"])
            if name == "intake":
                assert ports["http"] == default(settings, "http_port")
                assert ports["smtp"] == default(settings, "smtp_port")

    def test_the_intake_service_targets_its_ports(self, manifests, deployments):
        service = of_kind(manifests, "Service")["intake"]
        (container,) = pod_containers(deployments["intake"])
        names = {p["name"] for p in container["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
        labels = deployments["intake"]["spec"]["template"]["metadata"]["labels"]
        assert all(labels[k] == v for k, v in service["spec"]["selector"].items())


class TestSharedConfiguration:
    def test_settings_values_are_accepted(self, manifests, monkeypatch):
        import os

        env = config_map_data(manifests, "opora-env")
        for key in [k for k in os.environ if k.startswith("OPORA_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        for settings in SETTINGS.values():
            settings()

    def test_services_reach_nats_through_its_client_service(self, manifests):
        url = urlsplit(config_map_data(manifests, "opora-env")["OPORA_NATS_URL"])
        service = of_kind(manifests, "Service")[str(url.hostname)]
        assert url.port in {p["port"] for p in service["spec"]["ports"]}

    def test_contracts_and_team_paths_are_where_the_config_maps_are_mounted(
        self, manifests, deployments
    ):
        env = config_map_data(manifests, "opora-env")
        for deployment in deployments.values():
            (container,) = pod_containers(deployment)
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert mounts["contracts"] == env["OPORA_CONTRACTS_DIR"]
            assert str(Path(mounts["team"]) / "team.yml") == env["OPORA_TEAM_FILE"]

    def test_max_deliver_rides_out_a_stream_leader_election(self, manifests):
        """A killed node's stream leaderships move in about 8 s; retries must last longer."""
        deliveries = int(config_map_data(manifests, "opora-env")["OPORA_MAX_DELIVER"])
        patience = sum(backoff_s(n) for n in range(1, deliveries))
        assert patience >= 60, f"gives up after {patience} s of retries"

    def test_generated_config_maps_cover_every_contract_and_the_team(self, kustomization):
        maps = generated(kustomization, "configMapGenerator")
        contracts = {p.name for p in (REPO / "deploy" / "contracts").glob("*.y*ml")}
        assert set(maps["opora-contracts"]) == contracts
        assert maps["opora-team"]["team.yml"].resolve() == REPO / "deploy" / "team.yml"
        for files in maps.values():
            for source in files.values():
                assert source.exists(), source

    def test_references_name_objects_that_exist(self, manifests, kustomization):
        config_maps = set(of_kind(manifests, "ConfigMap")) | set(
            generated(kustomization, "configMapGenerator")
        )
        secrets = generated(kustomization, "secretGenerator")
        claims = set(of_kind(manifests, "PersistentVolumeClaim"))
        for workload in [
            *of_kind(manifests, "Deployment").values(),
            *of_kind(manifests, "StatefulSet").values(),
            *of_kind(manifests, "Job").values(),
        ]:
            pod = workload["spec"]["template"]["spec"]
            for volume in pod.get("volumes", []):
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in config_maps
                if "secret" in volume:
                    secret = secrets[volume["secret"]["secretName"]]
                    assert {i["key"] for i in volume["secret"]["items"]} <= set(secret)
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims
            for container in pod_containers(workload):
                for source in container.get("envFrom", []):
                    assert source["configMapRef"]["name"] in config_maps
                for item in container.get("env", []):
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["key"] in secrets[ref["name"]]

    def test_the_signing_key_is_the_same_secret_everywhere_it_is_used(self, deployments):
        users = set()
        for name, deployment in deployments.items():
            (container,) = pod_containers(deployment)
            for item in container.get("env", []):
                if item["name"] == "OPORA_SIGNING_KEY":
                    ref = item["valueFrom"]["secretKeyRef"]
                    assert (ref["name"], ref["key"]) == ("opora-secrets", "signing-key")
                    users.add(name)
        assert {"intake", "notifier"} <= users

    def test_secret_files_are_never_committed(self):
        ignore = (K8S_DIR / "secrets" / ".gitignore").read_text().split()
        assert "*" in ignore


class TestNatsCluster:
    def test_three_nodes_with_jetstream_on_their_own_volumes(self, nats):
        assert nats["spec"]["replicas"] == 3
        (container,) = pod_containers(nats)
        assert "-js" in container["args"]
        (claim,) = nats["spec"]["volumeClaimTemplates"]
        data_dir = container["args"][container["args"].index("-sd") + 1]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts[claim["metadata"]["name"]] == data_dir

    def test_routes_name_every_node_through_the_headless_service(self, manifests, nats):
        (container,) = pod_containers(nats)
        args = container["args"]
        routes = args[args.index("--routes") + 1].split(",")
        headless = of_kind(manifests, "Service")[nats["spec"]["serviceName"]]
        assert headless["spec"]["clusterIP"] == "None"
        assert headless["spec"]["publishNotReadyAddresses"] is True
        name, service = nats["metadata"]["name"], nats["spec"]["serviceName"]
        expected = [f"nats://{name}-{i}.{service}:6222" for i in range(nats["spec"]["replicas"])]
        assert routes == expected
        assert args[args.index("--cluster_name") + 1]

    def test_flags_are_those_the_cluster_test_runs(self, nats, tmp_path):
        local = NatsServer(
            store_dir=tmp_path,
            config=tmp_path / "nats.conf",
            server_name="n",
            cluster_name="c",
            cluster_port=6222,
            routes=("nats://a:6222",),
        )
        flags = {arg for arg in local.command()[1:] if arg.startswith("-")}
        (container,) = pod_containers(nats)
        assert flags <= set(container["args"])

    def test_the_config_includes_opora_s_server_settings(self, kustomization, nats):
        files = generated(kustomization, "configMapGenerator")["nats-config"]
        assert files["nats-server.conf"].resolve() == REPO / "deploy" / "nats" / "nats-server.conf"
        (container,) = pod_containers(nats)
        config = container["args"][container["args"].index("-c") + 1]
        assert Path(config).name in files
        assert "include ./nats-server.conf" in files[Path(config).name].read_text()
        assert "sync_interval: always" in files["nats-server.conf"].read_text()

    def test_a_disruption_budget_keeps_the_quorum(self, manifests, nats):
        budget = of_kind(manifests, "PodDisruptionBudget")["nats"]
        assert selects(budget["spec"]["selector"], nats["spec"]["template"]["metadata"]["labels"])
        assert budget["spec"]["maxUnavailable"] == 1

    def test_nodes_have_probes_and_limits(self, nats):
        (container,) = pod_containers(nats)
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container)
        assert container["resources"]["limits"]["memory"]


class TestProvisioning:
    def test_streams_get_as_many_replicas_as_there_are_nodes(self, manifests, nats):
        job = of_kind(manifests, "Job")["opora-provision"]
        commands = [c["command"] for c in pod_containers(job)]
        provision = next(c for c in commands if c[:2] == ["opora", "provision"])
        replicas = int(provision[provision.index("--replicas") + 1])
        assert replicas == nats["spec"]["replicas"]
        assert build_parser().parse_args(provision[1:]).replicas == replicas

    def test_contracts_are_pushed_after_provisioning(self, manifests):
        job = of_kind(manifests, "Job")["opora-provision"]
        spec = job["spec"]["template"]["spec"]
        assert spec["initContainers"][0]["command"][:2] == ["opora", "provision"]
        assert spec["containers"][0]["command"][:3] == ["opora", "contracts", "push"]

    def test_the_admin_token_is_read_from_the_secret(self, manifests):
        job = of_kind(manifests, "Job")["opora-provision"]
        (init,) = job["spec"]["template"]["spec"]["initContainers"]
        var_dir = next(e["value"] for e in init["env"] if e["name"] == "OPORA_VAR_DIR")
        mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
        assert mounts["admin-token"] == var_dir
        volume = next(
            v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "admin-token"
        )
        assert volume["secret"]["items"] == [{"key": "admin-token", "path": "admin.token"}]


class TestImages:
    def test_opora_images_are_the_compose_image(self, manifests, compose):
        image = compose["services"]["intake"]["image"]
        assert image == f"opora:{project_version()}"
        for workload in [
            *of_kind(manifests, "Deployment").values(),
            *of_kind(manifests, "Job").values(),
        ]:
            for container in pod_containers(workload):
                assert container["image"] == image, container["name"]

    def test_nats_is_the_compose_nats(self, nats, compose):
        (container,) = pod_containers(nats)
        assert container["image"] == compose["services"]["nats"]["image"]
