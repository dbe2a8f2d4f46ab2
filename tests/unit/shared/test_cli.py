import json
from pathlib import Path

from opora_shared.cli import main

CONTRACTS = Path(__file__).resolve().parents[3] / "deploy" / "contracts"


class TestContractsValidate:
    def test_valid_contracts_print_one_line_each(self, capsys):
        assert main(["contracts", "validate", str(CONTRACTS)]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert {line["tenant"] for line in lines if "tenant" in line} == {"romashka", "vector"}

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


TEAM = CONTRACTS.parent / "team.yml"
ONE_C = ["--subject", "1С не формирует отчёт", "--body", "Отчёт по продажам в 1С выдаёт ошибку"]


class TestContractsValidateTeam:
    def test_the_team_file_is_validated_too(self, capsys):
        assert main(["contracts", "validate", str(CONTRACTS), "--team", str(TEAM)]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert lines[-1]["team"] == str(TEAM)

    def test_a_team_file_with_an_unknown_shift_names_the_engineer(self, tmp_path, capsys):
        bad = tmp_path / "team.yml"
        text = TEAM.read_text(encoding="utf-8").replace("shift: always", "shift: nights")
        bad.write_text(text, encoding="utf-8")
        assert main(["contracts", "validate", str(CONTRACTS), "--team", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "team.yml" in err
        assert "engineers.duty.shift" in err


class TestClassify:
    def test_one_ticket_prints_the_api_classification(self, capsys):
        assert main(["classify", "--tenant", "romashka", "--from", "anna@romashka.ru", *ONE_C]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["category"] == "accounting_software"
        assert result["scope"] == "billable"
        assert {"kind", "priority", "language", "confidence", "reasons", "contract_revision"} <= (
            result.keys()
        )

    def test_the_tenant_defaults_to_the_senders(self, capsys):
        assert main(["classify", "--from", "it@vector-logistics.com", *ONE_C]) == 0
        result = json.loads(capsys.readouterr().out)
        assert (result["tenant"], result["scope"]) == ("vector", "included")

    def test_an_unknown_tenant_is_exit_2_naming_the_known_ones(self, capsys):
        assert main(["classify", "--tenant", "nope", *ONE_C]) == 2
        assert "romashka, vector" in capsys.readouterr().err

    def test_batch_prints_one_line_per_input_line_in_order(self, tmp_path, capsys):
        lines = [
            {"tenant": "romashka", "from": "a@romashka.ru", "subject": "1С", "body": "1С висит"},
            {"tenant": "vector", "from": "b@x.com", "subject": "1C", "body": "1C hangs", "id": 7},
            {"from": "c@romashka.ru", "subject": "Принтер", "body": "Замяло бумагу"},
        ]
        batch = tmp_path / "in.jsonl"
        batch.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
        assert main(["classify", "--batch", str(batch)]) == 0
        out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [o["tenant"] for o in out] == ["romashka", "vector", "romashka"]
        assert [o["scope"] for o in out[:2]] == ["billable", "included"]
        assert out[2]["category"] == "printing"

    def test_bad_batch_lines_get_an_error_object_and_exit_1(self, tmp_path, capsys):
        batch = tmp_path / "in.jsonl"
        batch.write_text('{"tenant": "vector", "subject": "x"}\nnot json\n[1]\n', encoding="utf-8")
        assert main(["classify", "--batch", str(batch)]) == 1
        out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [o["line"] for o in out] == [1, 2, 3]
        assert "body" in out[0]["error"]
        assert "not JSON" in out[1]["error"]

    def test_evaluate_prints_per_class_scores_and_a_confusion_matrix(self, capsys):
        assert main(["classify", "--evaluate"]) == 0
        out = capsys.readouterr().out
        assert "precision" in out
        assert "recall" in out
        assert "confusion" in out
        assert "accounting_software" in out
