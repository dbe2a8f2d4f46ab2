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
