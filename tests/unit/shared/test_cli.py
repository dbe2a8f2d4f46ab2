import json
from pathlib import Path

from opora_shared.cli import main

CONTRACTS = Path(__file__).resolve().parents[3] / "deploy" / "contracts"


class TestContractsValidate:
    def test_valid_contracts_print_one_line_each(self, capsys):
        assert main(["contracts", "validate", str(CONTRACTS)]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert {line["tenant"] for line in lines} == {"romashka", "vector"}

    def test_an_invalid_contract_is_exit_2_with_file_and_field(self, tmp_path, capsys):
        text = (
            (CONTRACTS / "vector.yml")
            .read_text(encoding="utf-8")
            .replace("language: en", "language: fr")
        )
        (tmp_path / "vector.yml").write_text(text, encoding="utf-8")
        assert main(["contracts", "validate", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "vector.yml" in err
        assert "language" in err


class TestParseEmail:
    def test_prints_one_json_line_per_file_and_an_error_object_for_bad_ones(self, tmp_path, capsys):
        good = tmp_path / "a.eml"
        good.write_bytes(b"From: a@romashka.ru\r\nSubject: [#42] Re: test\r\n\r\nHello\r\n")
        assert main(["parse-email", str(good), str(tmp_path / "missing.eml")]) == 0
        first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
        assert first["from"] == "a@romashka.ru"
        assert first["ticket_ref"] == "42"
        assert "error" in second


class TestSlaDeadlines:
    def test_prints_business_hours_deadlines_in_the_contract_timezone(self, capsys):
        code = main(
            [
                "sla",
                "deadlines",
                "--tenant",
                "romashka",
                "--priority",
                "P3",
                "--received",
                "2026-11-27T17:30:00+03:00",
                "--contracts",
                str(CONTRACTS),
            ]
        )
        assert code == 0
        result = json.loads(capsys.readouterr().out)
        assert result["first_response_due"] == "2026-11-30T10:30:00+03:00"

    def test_naive_time_or_unknown_tenant_is_exit_2(self, capsys):
        assert (
            main(
                [
                    "sla",
                    "deadlines",
                    "--tenant",
                    "romashka",
                    "--priority",
                    "P3",
                    "--received",
                    "2026-11-27T17:30:00",
                    "--contracts",
                    str(CONTRACTS),
                ]
            )
            == 2
        )
        assert (
            main(
                [
                    "sla",
                    "deadlines",
                    "--tenant",
                    "nobody",
                    "--priority",
                    "P3",
                    "--received",
                    "2026-11-27T17:30:00Z",
                    "--contracts",
                    str(CONTRACTS),
                ]
            )
            == 2
        )
        assert "offset" in capsys.readouterr().err
