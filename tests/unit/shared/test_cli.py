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
