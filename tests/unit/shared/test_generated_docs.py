"""The AsyncAPI and OpenAPI documents under docs/ are generated from the code: never stale."""

from pathlib import Path

from opora_shared.docs import documents

DOCS = Path(__file__).resolve().parents[3] / "docs"


class TestGeneratedDocs:
    def test_committed_documents_match_the_code(self):
        stale = [
            rel
            for rel, content in documents().items()
            if not (DOCS / rel).exists() or (DOCS / rel).read_text(encoding="utf-8") != content
        ]
        assert stale == [], f"run 'make docs' and commit: {stale}"

    def test_every_service_documents_what_it_consumes_and_publishes(self):
        docs = documents()
        assert "opora.ev.*.ticket.*.received" in docs["asyncapi/classifier.json"]
        assert "opora.ev.{tenant}.ticket.{ticket_id}.classified" in docs["asyncapi/classifier.json"]
        assert "opora.ev.{tenant}.sla.{ticket_id}.armed" in docs["asyncapi/sla-timer.json"]
        assert "opora.ev.*.sla.*.armed" in docs["asyncapi/notifier.json"]
        assert "opora.ev.{tenant}.ticket.{ticket_id}.received" in docs["asyncapi/intake.json"]
        assert '"/v1/tickets"' in docs["openapi/intake.json"]


class TestContractSchema:
    """The exported JSON Schemas accept the shipped files and reject what pydantic rejects."""

    def _schema(self, name):
        import json

        return json.loads((DOCS / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8"))

    def test_the_demo_contracts_and_team_validate_against_the_schemas(self):
        import jsonschema
        import yaml

        contract = self._schema("contract")
        for path in sorted((DOCS.parent / "deploy" / "contracts").glob("*.yml")):
            jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), contract)
        team = yaml.safe_load((DOCS.parent / "deploy" / "team.yml").read_text(encoding="utf-8"))
        jsonschema.validate(team, self._schema("team"))

    def test_the_schema_rejects_an_unknown_category_and_an_unknown_field(self):
        import jsonschema
        import pytest
        import yaml

        schema = self._schema("contract")
        data = yaml.safe_load((DOCS.parent / "deploy" / "contracts" / "vector.yml").read_text())
        data["services"]["included"].append("coffee")
        with pytest.raises(jsonschema.ValidationError, match="coffee"):
            jsonschema.validate(data, schema)
        data["services"]["included"].pop()
        data["colour"] = "red"
        with pytest.raises(jsonschema.ValidationError, match="colour"):
            jsonschema.validate(data, schema)
