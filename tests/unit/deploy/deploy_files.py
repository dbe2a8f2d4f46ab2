"""Helpers of the deployment tests: where the files are, how to read a Dockerfile, and the code
the files must agree with (console scripts, settings classes and their defaults).

No Docker engine and no Kubernetes cluster run here, so these files are checked by reading them.
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opora_classifier.settings import ClassifierSettings
from opora_intake.settings import IntakeSettings
from opora_notifier.settings import NotifierSettings
from opora_shared.settings import OporaSettings
from opora_sla_timer.settings import SlaTimerSettings

REPO = Path(__file__).resolve().parents[3]
DOCKER_DIR = REPO / "deploy" / "docker"
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
K8S_DIR = REPO / "deploy" / "k8s"

SETTINGS: dict[str, type[OporaSettings]] = {
    "opora": OporaSettings,
    "opora-intake": IntakeSettings,
    "opora-classifier": ClassifierSettings,
    "opora-sla-timer": SlaTimerSettings,
    "opora-notifier": NotifierSettings,
}
"""Console script -> the settings class it reads."""

SERVICES = {"intake": "opora-intake", "classifier": "opora-classifier"}
SERVICES |= {"sla-timer": "opora-sla-timer", "notifier": "opora-notifier"}
"""Service name -> its console script."""


def default(settings: type[OporaSettings], name: str) -> Any:
    """A setting's default, read from the class (never from this process's environment)."""
    return settings.model_fields[name].default


def is_setting(settings: type[OporaSettings], env_name: str) -> bool:
    """True when ``env_name`` is OPORA_ + the name of one of the class's fields."""
    return env_name.startswith("OPORA_") and env_name[6:].lower() in settings.model_fields


def console_scripts() -> dict[str, str]:
    """The console scripts of the root package (the one the image installs): name -> target."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return dict(project["scripts"])


def project_version() -> str:
    """The version of the root package, which tags the image."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return str(project["version"])


def image_tag(image: str) -> str:
    """The tag of ``name:tag`` (empty when there is none)."""
    name_part = image.rsplit("/", 1)[-1]
    return name_part.split(":", 1)[1] if ":" in name_part else ""


def pinned(image: str) -> bool:
    """A tag naming a full release (``2.15.1``, ``v2.53.1``, ``11.6.0``...), never ``latest``."""
    return re.match(r"^v?\d+\.\d+\.\d+(-[a-z0-9.]+)?$", image_tag(image)) is not None


@dataclass
class Stage:
    """One stage of a Dockerfile."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments gone."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif keyword == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


def env_pairs(rest: str) -> dict[str, str]:
    """The variables of an ``ENV a=1 b=2`` instruction."""
    return dict(pair.split("=", 1) for pair in rest.split())
