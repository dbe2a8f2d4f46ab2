"""Fixtures of the deployment tests: the compose file and the Kubernetes manifests, parsed."""

from typing import Any

import pytest
import yaml
from deploy_files import COMPOSE_FILE, K8S_DIR


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """docker-compose.yml, parsed (YAML merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="session")
def kustomization() -> dict[str, Any]:
    """deploy/k8s/kustomization.yaml."""
    loaded: dict[str, Any] = yaml.safe_load(
        (K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8")
    )
    return loaded


@pytest.fixture(scope="session")
def manifests(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    """Every YAML document of every resource the kustomization lists."""
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        text = (K8S_DIR / resource).read_text(encoding="utf-8")
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs
