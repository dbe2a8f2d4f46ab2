"""The web form's pure parts: language, field checks, file limits, tokens and the page."""

import re
import time
import uuid

import pytest

from opora_intake.settings import IntakeSettings
from opora_intake.web import (
    WORDS,
    FormState,
    WebSigners,
    check_files,
    check_form,
    choose_language,
    clean_content_type,
    clean_filename,
    error_message,
    files_message,
    form_page,
    format_size,
)
from opora_shared.vocabulary import Language

KEY = b"k" * 32


def valid(**overrides):
    fields = {
        "name": "Анна",
        "email": "Anna@Romashka.ru",
        "subject": "Принтер не печатает",
        "description": "Замяло бумагу",
    }
    fields.update(overrides)
    return fields


def test_every_phrase_exists_in_both_languages():
    assert set(WORDS[Language.RU]) == set(WORDS[Language.EN])


class TestChooseLanguage:
    @pytest.mark.parametrize(
        ("requested", "accept", "expected"),
        [
            ("ru", "en-US,en;q=0.9", Language.RU),
            ("EN", "ru-RU", Language.EN),
            ("de", "ru-RU,ru;q=0.9", Language.RU),
            (None, "ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", Language.RU),
            (None, "en-GB,en;q=0.9,ru;q=0.8", Language.EN),
            (None, "de-DE,de;q=0.9,ru;q=0.5,en;q=0.6", Language.EN),
            (None, "ru;q=0, en;q=0.1", Language.EN),
            (None, "fr-FR", Language.EN),
            (None, None, Language.EN),
            (None, "garbage;;q=x,,", Language.EN),
        ],
    )
    def test_query_then_accept_language_then_default(self, requested, accept, expected):
        assert choose_language(requested, accept) is expected


class TestCheckForm:
    def test_a_valid_form_is_stripped_and_the_address_lowered(self):
        form, errors = check_form(valid(name="  Анна  "))
        assert errors == {}
        assert form is not None
        assert form.name == "Анна"
        assert form.email == "anna@romashka.ru"

    def test_every_missing_field_is_named_in_form_order(self):
        form, errors = check_form({})
        assert form is None
        assert list(errors) == ["name", "email", "subject", "description"]
        assert set(errors.values()) == {"required"}

    def test_whitespace_only_is_missing(self):
        _, errors = check_form(valid(subject="   \n "))
        assert errors == {"subject": "required"}

    @pytest.mark.parametrize("address", ["anna", "anna@", "anna@romashka", "a b@c.ru", "<a@b.ru>"])
    def test_a_bad_address_is_an_email_error(self, address):
        _, errors = check_form(valid(email=address))
        assert errors == {"email": "email"}

    @pytest.mark.parametrize(("field", "limit"), [("name", 200), ("subject", 998)])
    def test_too_long_is_refused(self, field, limit):
        _, errors = check_form(valid(**{field: "x" * (limit + 1)}))
        assert errors == {field: "too_long"}
        _, errors = check_form(valid(**{field: "x" * limit}))
        assert errors == {}

    def test_unknown_fields_are_ignored(self):
        form, errors = check_form({**valid(), "priority": "P1", "lang": "ru"})
        assert form is not None
        assert errors == {}


class TestMessages:
    @pytest.mark.parametrize("language", list(Language))
    def test_each_error_code_has_a_message(self, language):
        for name in ("name", "email", "subject", "description"):
            assert error_message(language, name, "required")
        assert "998" in error_message(language, "subject", "too_long")
        assert error_message(language, "email", "email") == WORDS[language]["error_email"]

    def test_file_messages_name_the_file_and_the_limit_in_words(self):
        problem = check_files(
            [("скан.pdf", 11 * 2**20)], max_files=10, per_file=10 * 2**20, total=25 * 2**20
        )
        assert problem is not None
        assert files_message(Language.RU, problem) == "Файл «скан.pdf» больше 10 МБ"
        assert files_message(Language.EN, problem) == "The file “скан.pdf” is larger than 10 MB"

    @pytest.mark.parametrize(
        ("size", "language", "text"),
        [
            (512, Language.EN, "512 bytes"),
            (1536, Language.EN, "1.5 KB"),
            (10 * 2**20, Language.RU, "10 МБ"),
            (25 * 2**20, Language.EN, "25 MB"),
        ],
    )
    def test_sizes_read_as_people_write_them(self, size, language, text):
        assert format_size(size, language) == text


LIMITS = {"max_files": 2, "per_file": 100, "total": 150}


class TestCheckFiles:
    def test_within_the_limits(self):
        assert check_files([("a", 100), ("b", 50)], **LIMITS) is None
        assert check_files([], **LIMITS) is None

    def test_too_many_files_is_a_count_problem(self):
        problem = check_files([("a", 1)] * 3, **LIMITS)
        assert problem is not None
        assert (problem.code, problem.limit, problem.too_large) == ("too_many_files", 2, False)
        assert files_message(Language.EN, problem) == "Attach at most 2 files"

    def test_one_file_over_its_limit_is_named(self):
        problem = check_files([("a", 10), ("big.zip", 101)], **LIMITS)
        assert problem is not None
        assert (problem.code, problem.filename, problem.too_large) == (
            "file_too_large",
            "big.zip",
            True,
        )

    def test_together_over_the_total(self):
        problem = check_files([("a", 100), ("b", 51)], **LIMITS)
        assert problem is not None
        assert (problem.code, problem.too_large) == ("files_too_large", True)


class TestCleaning:
    @pytest.mark.parametrize(
        ("raw", "clean"),
        [
            ("C:\\Users\\anna\\Desktop\\скан.pdf", "скан.pdf"),
            ("/etc/passwd", "passwd"),
            ("a\x00b\r\n.txt", "ab.txt"),
            ("", "file"),
            ("x" * 300, "x" * 255),
        ],
    )
    def test_file_names_lose_paths_and_control_characters(self, raw, clean):
        assert clean_filename(raw) == clean

    @pytest.mark.parametrize(
        ("raw", "clean"),
        [
            ("image/png", "image/png"),
            ("Text/Plain; charset=utf-8", "text/plain"),
            ("text/html\r\nX-Evil: 1", "application/octet-stream"),
            (None, "application/octet-stream"),
            ("nonsense", "application/octet-stream"),
        ],
    )
    def test_content_types_are_plain_or_octet_stream(self, raw, clean):
        assert clean_content_type(raw) == clean


class TestFormTokens:
    def test_a_token_is_valid_for_its_own_key_only(self):
        signers = WebSigners.build(KEY, IntakeSettings())
        key = str(uuid.uuid4())
        token = signers.form_token(key)
        assert signers.form_token_valid(token, key)
        assert not signers.form_token_valid(token, str(uuid.uuid4()))
        assert not signers.form_token_valid(token + "x", key)
        assert not signers.form_token_valid("", key)

    def test_an_old_form_is_refused(self, monkeypatch):
        signers = WebSigners.build(KEY, IntakeSettings(web_form_max_age_s=60))
        key = str(uuid.uuid4())
        token = signers.form_token(key)
        later = time.time() + 120
        monkeypatch.setattr(time, "time", lambda: later)
        assert not signers.form_token_valid(token, key)

    def test_a_status_link_is_not_a_form_token(self):
        signers = WebSigners.build(KEY, IntakeSettings())
        assert not signers.form_token_valid(signers.links.sign("romashka", "1"), "romashka")


class TestFormPage:
    signers = WebSigners.build(KEY, IntakeSettings())

    def page(self, language=Language.RU, **state):
        return form_page(language, FormState(**state), self.signers, IntakeSettings(), root="")

    def test_every_input_has_a_bound_label_and_required_ones_say_so(self):
        page = self.page()
        for name in ("name", "email", "subject", "description", "attachments"):
            assert f'<label for="{name}">' in page
            assert f'id="{name}"' in page
        assert page.count("(обязательно)") == 4
        assert page.count(" required ") == 4
        assert '<html lang="ru">' in page

    def test_the_form_posts_multipart_without_script_and_carries_its_tokens(self):
        page = self.page(idempotency_key="0b6c2f9e-3f7e-4a7d-9a51-6c3f1c7e9d10")
        assert 'enctype="multipart/form-data"' in page
        assert "<script" not in page
        assert 'name="idempotency_key" value="0b6c2f9e-3f7e-4a7d-9a51-6c3f1c7e9d10"' in page
        token = re.search(r'name="form_token" value="([^"]+)"', page)
        assert token is not None
        assert self.signers.form_token_valid(token.group(1), "0b6c2f9e-3f7e-4a7d-9a51-6c3f1c7e9d10")

    def test_limits_are_stated_next_to_the_file_input(self):
        assert "до 10 файлов, каждый до 10 МБ, всего до 25 МБ" in self.page()
        assert "up to 10 files, 10 MB each, 25 MB in total" in self.page(Language.EN)

    def test_errors_are_announced_linked_and_described(self):
        page = self.page(
            values={"name": "", "email": "bad", "subject": "s", "description": "d"},
            errors={"name": "Укажите ваше имя", "email": "Адрес почты должен быть вида"},
        )
        assert page.startswith("<!doctype html>")
        assert "<title>Ошибка: " in page
        summary = re.search(r'<div class="error-summary"[^>]*>', page)
        assert summary is not None
        assert 'role="alert"' in summary.group(0)
        assert 'tabindex="-1"' in summary.group(0)
        assert "autofocus" in summary.group(0)
        assert '<a href="#name">Укажите ваше имя</a>' in page
        email = re.search(r'<input id="email"[^>]*>', page)
        assert email is not None
        assert 'aria-describedby="email-hint email-error"' in email.group(0)
        assert 'aria-invalid="true"' in email.group(0)
        assert 'value="bad"' in email.group(0)
        assert '<p id="email-error" class="error-message">' in page

    def test_a_valid_field_is_not_marked_invalid(self):
        page = self.page(errors={"email": "x"})
        name = re.search(r'<input id="name"[^>]*>', page)
        assert name is not None
        assert "aria-invalid" not in name.group(0)

    def test_values_are_escaped(self):
        page = self.page(
            values={
                "name": '"><script>alert(1)</script>',
                "email": "",
                "subject": "",
                "description": "</textarea><script>x</script>",
            }
        )
        assert "<script>" not in page
        assert "&lt;/textarea&gt;&lt;script&gt;" in page

    def test_a_general_error_is_in_the_summary(self):
        page = self.page(form_error="Форма устарела")
        assert "Форма устарела" in page
        assert 'role="alert"' in page

    def test_no_summary_without_errors(self):
        assert "error-summary" not in self.page()
        assert "<title>Ошибка" not in self.page()

    def test_english_page_links_to_russian(self):
        page = self.page(Language.EN)
        assert '<html lang="en">' in page
        assert 'href="?lang=ru" lang="ru"' in page
        assert "Send request" in page

    def test_no_file_input_when_files_are_off(self):
        page = form_page(
            Language.EN, FormState(), self.signers, IntakeSettings(web_max_files=0), root=""
        )
        assert 'type="file"' not in page
        assert "Files are not accepted" in page
