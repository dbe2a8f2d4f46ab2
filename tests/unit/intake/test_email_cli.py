"""``parse_files``: the body of ``opora parse-email FILE...``."""

import io
import json
from pathlib import Path

from opora_intake.parsing.cli import main, parse_files

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mail"


def run(paths: list[str]) -> tuple[int, list[dict[str, object]]]:
    out = io.StringIO()
    code = parse_files(paths, out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


class TestParseFiles:
    def test_prints_one_json_line_per_file_in_order(self):
        paths = [str(FIXTURES / "ru-cp1251-outlook-reply.eml"), str(FIXTURES / "en-auto-reply.eml")]
        code, lines = run(paths)
        assert code == 0
        assert [line["file"] for line in lines] == paths
        assert lines[0]["subject"] == "RE: [#1042] Заявка принята: Принтер не печатает"
        assert lines[0]["ticket_ref"] == "1042"
        assert lines[0]["from"] == "anna@romashka.ru"
        assert lines[1]["is_automatic"] is True

    def test_attachments_are_listed_without_their_bytes(self):
        _, (line,) = run([str(FIXTURES / "attachments.eml")])
        attachments = line["attachments"]
        assert isinstance(attachments, list)
        assert len(attachments) == 6
        assert set(attachments[0]) == {"filename", "content_type", "size", "inline", "content_id"}

    def test_unreadable_path_gives_an_error_object_and_the_rest_still_runs(self, tmp_path):
        missing = str(tmp_path / "missing.eml")
        code, lines = run([missing, str(tmp_path), str(FIXTURES / "en-bulk-list.eml")])
        assert code == 0
        assert lines[0] == {"file": missing, "error": "cannot read: No such file or directory"}
        assert lines[1]["file"] == str(tmp_path)
        assert str(lines[1]["error"]).startswith("cannot read: ")
        assert lines[2]["subject"] == "April product update"

    def test_garbage_file_is_parsed_not_refused(self, tmp_path):
        garbage = tmp_path / "garbage.bin"
        garbage.write_bytes(bytes(range(256)) * 8)
        _, (line,) = run([str(garbage)])
        assert "error" not in line
        assert isinstance(line["text"], str)

    def test_non_ascii_text_is_written_as_is(self):
        out = io.StringIO()
        parse_files([str(FIXTURES / "ru-koi8r-iphone.eml")], out)
        assert "Не работает почта" in out.getvalue()

    def test_main_reads_arguments(self, capsys):
        assert main([str(FIXTURES / "en-bulk-list.eml")]) == 0
        assert json.loads(capsys.readouterr().out)["headers"]["precedence"] == "bulk"
