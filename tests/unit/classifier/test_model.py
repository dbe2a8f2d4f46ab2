"""The shipped ticket model: loads offline, generalises to new tickets, held-out targets, builds
reproducibly, and its own vectoriser agrees with scikit-learn's."""

import numpy as np
import pytest
from scipy.sparse import hstack

from opora_classifier import train as train_module
from opora_classifier.model import (
    BLOCK_WEIGHTS,
    TextFeatures,
    TicketModel,
    _sklearn_vectorizers,
    lexicon_hits,
    lexicon_words,
    ticket_text,
    train,
)
from opora_classifier.priority import assess_priority
from opora_classifier.train import MODEL_DIR, evaluate, load_corpus, split
from opora_shared.contracts import ContractBook
from opora_shared.vocabulary import Category, Kind, Priority

# Hand-written tickets, not in the corpus: (subject, body, category).
NEW_TICKETS = [
    ("Не приходят письма", "С утра в Outlook не приходит ни одно письмо от клиентов.", "email"),
    ("Mailbox full", "Outlook says my mailbox is full and I can't send email.", "email"),
    ("Принтер жует бумагу", "Принтер HP в приёмной зажевал бумагу и мигает.", "printing"),
    ("Scanner", "The MFP won't scan to my email anymore, printing is fine.", "printing"),
    (
        "1С не проводит документ",
        "В 1С Бухгалтерии не проводится реализация, ошибка.",
        "accounting_software",
    ),
    (
        "ERP invoice error",
        "The ERP throws an error when I post a sales invoice.",
        "accounting_software",
    ),
    ("Ноутбук не включается", "Мой рабочий ноутбук не включается, зарядка горит.", "workstation"),
    (
        "Keyboard broken",
        "Half the keys on my keyboard stopped working after a coffee spill.",
        "workstation",
    ),
    ("Нет интернета", "В офисе пропал интернет, роутер мигает красным.", "network"),
    ("VPN won't connect", "VPN from home fails with a timeout since this morning.", "network"),
    (
        "Забыла пароль",
        "Забыла пароль от компьютера, учётная запись заблокирована.",
        "accounts_access",
    ),
    (
        "New starter Monday",
        "Please create an account and email for our new employee starting Monday.",
        "accounts_access",
    ),
    (
        "Бэкап сервера",
        "Резервное копирование файлового сервера не выполнялось три дня.",
        "server_infra",
    ),
    (
        "File share missing",
        "The shared drive on the file server disappeared for the whole team.",
        "server_infra",
    ),
    (
        "Подозрительное письмо",
        "Пришло письмо со ссылкой, похоже на фишинг, просят ввести пароль.",
        "security",
    ),
    (
        "Ransomware?",
        "My files got renamed to .locked and there is a ransom note on the desktop.",
        "security",
    ),
    ("Телефон не звонит", "Мой IP-телефон не регистрируется на АТС, нет гудка.", "telephony"),
    ("Desk phone dead", "My desk phone shows 'No service' and I can't make calls.", "telephony"),
    (
        "Проблема: SRV-FS недоступен",
        "Проблема началась в 10:00 Имя проблемы: SRV-FS недоступен по ICMP ping Важность: Высокая",
        "monitoring",
    ),
    (
        "[FIRING:1] HostDown db01",
        "[FIRING:1] HostDown Labels: - alertname = HostDown - instance = db01:9100"
        " - severity = critical",
        "monitoring",
    ),
    ("Кофемашина", "Сломалась кофемашина на кухне, вызовите мастера.", "other"),
    ("Broken chair", "The office chair in room 3 is broken, can you order a new one?", "other"),
]


@pytest.fixture(scope="module")
def model() -> TicketModel:
    return TicketModel.load(MODEL_DIR)


@pytest.fixture(scope="module")
def held_out() -> list[dict]:
    return split(load_corpus())[1]


def test_shipped_model_has_metadata(model: TicketModel) -> None:
    assert len(model.version) == 64
    assert "sklearn_version" in model.meta
    assert "held_out" in model.meta
    assert (MODEL_DIR / "model.joblib").stat().st_size < 5_000_000


@pytest.mark.parametrize(("subject", "body", "category"), NEW_TICKETS)
def test_new_tickets_get_plausible_categories(
    model: TicketModel, subject: str, body: str, category: str
) -> None:
    prediction = model.predict(subject, body)
    assert prediction.category == Category(category), prediction
    assert 0 < prediction.category_confidence <= 1
    assert prediction.top_features


def test_generalises_over_new_tickets(model: TicketModel) -> None:
    hits = sum(model.predict(s, b).category == c for s, b, c in NEW_TICKETS)
    assert hits / len(NEW_TICKETS) >= 0.9
    assert {c for _, _, c in NEW_TICKETS} == {str(c) for c in Category}


def test_monitoring_alert_is_an_alert(model: TicketModel) -> None:
    assert model.predict(*NEW_TICKETS[19][:2]).kind == "alert"


def test_a_person_forwarding_an_alert_is_not_monitoring(model: TicketModel) -> None:
    prediction = model.predict(
        "FW: backup failed",
        "Hi, I got this email overnight, is it bad?\n\n-----Original Message-----\n"
        "From: Veeam Backup\nSubject: [Failed] FS01 nightly\n\nError: Failed to create snapshot",
    )
    assert prediction.category is Category.SERVER_INFRA
    assert prediction.kind is not Kind.ALERT


def test_held_out_targets(model: TicketModel, held_out: list[dict]) -> None:
    scores = evaluate(model, held_out, ContractBook.from_dir(train_module.CONTRACTS_DIR))
    assert scores["category_accuracy"] >= 0.90
    assert scores["scope_accuracy_romashka"] >= 0.90
    assert scores["scope_accuracy_vector"] >= 0.90
    assert scores["priority_exact"] >= 0.75
    assert scores["priority_within_one"] >= 0.95
    assert scores == model.meta["held_out"]


def test_build_is_reproducible(held_out: list[dict]) -> None:
    train_part, _ = split(load_corpus())
    first, second = train(train_part), train(list(reversed(train_part)))
    pairs = [(r["subject"], r["body"]) for r in held_out]
    assert first.predict_many(pairs) == second.predict_many(pairs)
    assert first.version == second.version


def test_shipped_model_has_a_priority_layer(model: TicketModel) -> None:
    assert model.priority is not None
    got, reasons = assess_priority("Мышка", "Мышка плохо работает, взял другую.", Kind.INCIDENT)
    assert got in (Priority.P3, Priority.P4)
    assert reasons


class TestVectoriser:
    """The model's own vectoriser is the one scikit-learn would have produced."""

    def test_same_matrix_as_scikit_learn(self, held_out: list[dict]) -> None:
        texts = [ticket_text(r["subject"], r["body"]) for r in load_corpus()[:300]]
        ours = TextFeatures.fit(texts).matrix_of_texts([*texts, ""])
        blocks = []
        for name, vectorizer in _sklearn_vectorizers().items():
            vectorizer.fit(texts)
            blocks.append(vectorizer.transform([*texts, ""]) * BLOCK_WEIGHTS[name])
        theirs = hstack(blocks).tocsr()
        assert ours.shape == theirs.shape
        assert np.abs((ours - theirs).toarray()).max() < 1e-9

    def test_one_ticket_equals_its_row_in_a_batch(self, model: TicketModel) -> None:
        pairs = [(r["subject"], r["body"]) for r in load_corpus()[:50]]
        batch = model.predict_many(pairs)
        for pair, from_batch in zip(pairs, batch, strict=True):
            single = model.predict(*pair)
            assert (single.category, single.kind) == (from_batch.category, from_batch.kind)
            assert abs(single.category_confidence - from_batch.category_confidence) < 1e-3
            assert single.top_features == from_batch.top_features

    def test_remembers_only_the_last_ticket(self, model: TicketModel) -> None:
        first = model.features.row("Принтер", "не печатает")
        model.features.row("Printer", "jammed")
        again = model.features.row("Принтер", "не печатает")
        assert np.array_equal(first[0], again[0])
        assert np.allclose(first[1], again[1])

    def test_an_empty_ticket_still_gets_a_verdict(self, model: TicketModel) -> None:
        prediction = model.predict("", "")
        assert prediction.top_features == ()
        assert 0 < prediction.category_confidence <= 1


class TestLexicon:
    def test_short_entries_are_whole_words(self) -> None:
        assert "lex:other" not in lexicon_hits(ticket_text("access", "request access"))
        assert "lex:other" in lexicon_hits(ticket_text("AC", "the ac is broken"))

    def test_desktop_is_not_furniture(self) -> None:
        text = ticket_text("Файлы", "Пропали файлы с рабочего стола")
        assert "lex:other" not in lexicon_hits(text)
        assert "lex:workstation" in lexicon_hits(text)

    def test_reasons_name_the_phrases_found(self) -> None:
        text = ticket_text("Принтер", "Принтер зажевал бумагу")
        assert lexicon_words(text, "printing")[:2] == ["принтер", "зажева"]
        assert lexicon_words(text, "cue:alert") == []
