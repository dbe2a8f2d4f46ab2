"""Generating the AsyncAPI (per service) and OpenAPI (intake) documents from the code."""

import json
from pathlib import Path

from prometheus_client import CollectorRegistry

DOC_NATS_URL = "nats://127.0.0.1:4222"


def documents() -> dict[str, str]:
    """Relative path -> content of every generated document."""
    from opora_classifier.app import create_app as classifier_app
    from opora_classifier.settings import ClassifierSettings
    from opora_intake.app import create_app as intake_app
    from opora_intake.settings import IntakeSettings
    from opora_notifier.app import create_app as notifier_app
    from opora_notifier.settings import NotifierSettings
    from opora_sla_timer.app import create_app as sla_app
    from opora_sla_timer.settings import SlaTimerSettings

    docs: dict[str, str] = {}
    intake = intake_app(IntakeSettings(nats_url=DOC_NATS_URL), registry=CollectorRegistry())
    docs["asyncapi/intake.json"] = _json(intake.state.asyncapi.to_specification().to_jsonable())
    docs["openapi/intake.json"] = _json(intake.openapi())
    apps = {
        "classifier": classifier_app(
            ClassifierSettings(nats_url=DOC_NATS_URL), registry=CollectorRegistry()
        ),
        "sla-timer": sla_app(SlaTimerSettings(nats_url=DOC_NATS_URL), registry=CollectorRegistry()),
        "notifier": notifier_app(
            NotifierSettings(nats_url=DOC_NATS_URL), registry=CollectorRegistry()
        ),
    }
    for name, app in apps.items():
        docs[f"asyncapi/{name}.json"] = _json(app.schema.to_specification().to_jsonable())
    docs.update(schemas())
    return docs


def schemas() -> dict[str, str]:
    """JSON Schemas of the files operators write: a tenant contract and the team file."""
    from opora_shared.contracts import Contract
    from opora_shared.team import Team

    result = {}
    for name, model in (("contract", Contract), ("team", Team)):
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://opora.local/schemas/{name}.schema.json"
        result[f"schemas/{name}.schema.json"] = _json(schema)
    return result


def _json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def generate(out: Path, *, check: bool = False) -> list[Path]:
    """Write the documents (or only compare, with ``check``); the paths that were stale."""
    stale = []
    for rel, content in documents().items():
        path = out / rel
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
    return stale
