"""The trained ticket model: category and kind from a ticket's text, with the words behind them.

TF-IDF over words (1-2 grams) plus character n-grams inside word boundaries (2-5, which copes
with Russian morphology, typos and mixed ru/en terms), each feeding a logistic regression: one
pipeline for category, one for kind. Training is deterministic (fixed seeds, sorted input), so
the same corpus and code give the same model. Pure apart from ``save``/``load``, which touch
only the given path; nothing here reaches the network.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped,unused-ignore]
import numpy as np
import sklearn  # type: ignore[import-untyped,unused-ignore]
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped,unused-ignore]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped,unused-ignore]
from sklearn.pipeline import FeatureUnion  # type: ignore[import-untyped,unused-ignore]

from opora_classifier.priority import PriorityModel, use_model
from opora_shared.vocabulary import Category, Kind

TRAINING_CODE_VERSION = "model-3"
"""Bump when features or hyper-parameters change: it is part of the model version."""

MODEL_FILE = "model.joblib"
META_FILE = "model.json"
_TOP_FEATURES = 5
LEXICON_WEIGHT = 1.0
_TOKENS = r"(?u)\b\w[\w\-]*\w\b|\b\w\b"  # keeps "wi-fi", "1с", "e-mail"
_NOISE = re.compile(r"\d{2,}")

# Domain hints: stems a team lead would name for each category. Each hit becomes one shared
# feature per category ("lex:security"), so a word the corpus never saw still counts when the
# lexicon knows it. Matched at a word start, on lowercased text with ё folded to е.
LEXICON: dict[Category, tuple[str, ...]] = {
    Category.EMAIL: (
        "почт",
        "письм",
        "outlook",
        "аутлук",
        "e-mail",
        "email",
        "mail",
        "mailbox",
        "inbox",
        "ящик",
        "рассылк",
        "подпис",
        "signature",
        "exchange",
        "smtp",
        "imap",
        "spam",
        "спам",
        "вложени",
        "attachment",
        "calendar",
        "календар",
        "shared mailbox",
    ),
    Category.PRINTING: (
        "принтер",
        "печат",
        "распечат",
        "сканер",
        "сканир",
        "мфу",
        "картридж",
        "тонер",
        "toner",
        "printer",
        "print",
        "scan",
        "cartridge",
        "jam",
        "замял",
        "бумаг",
        "paper",
        "kyocera",
        "laserjet",
        "brother",
        "xerox",
        "ксерокс",
        "drum",
        "барабан",
        "этикет",
        "label",
        "zebra",
    ),
    Category.ACCOUNTING_SOFTWARE: (
        "1с",
        "1c",
        "бухгалтерск",
        "erp",
        "accounting",
        "контур",
        "сбис",
        "диадок",
        "эдо",
        "банк-клиент",
        "клиент-банк",
        "выписк",
        "проводк",
        "зуп",
        "зарплат",
        "payroll",
        "invoice",
        "quickbooks",
        "sap",
        "dynamics",
        "конфигурац",
        "отчетност",
        "декларац",
        "накладн",
        "упд",
        "ledger",
        "general ledger",
        "billing module",
    ),
    Category.WORKSTATION: (
        "компьютер",
        "комп",
        "ноутбук",
        "ноут",
        "windows",
        "виндовс",
        "мышк",
        "мыш",
        "клавиатур",
        "монитор",
        "экран",
        "computer",
        "laptop",
        "pc",
        "keyboard",
        "mouse",
        "monitor",
        "screen",
        "word",
        "excel",
        "ворд",
        "эксел",
        "office",
        "офисн",
        "teams",
        "гарнитур",
        "headset",
        "наушник",
        "webcam",
        "камер",
        "usb",
        "dock",
        "док-станц",
        "обновлени",
        "update",
        "синий экран",
        "bsod",
        "тормоз",
        "slow",
        "зависа",
        "freez",
        "hdmi",
        "проектор",
        "projector",
        "браузер",
        "browser",
        "chrome",
        "adobe",
        "pdf",
        "диск c",
        "tablet",
        "планшет",
        "пк",
    ),
    Category.NETWORK: (
        "интернет",
        "internet",
        "wi-fi",
        "wifi",
        "вайфай",
        "вай-фай",
        "сеть",
        "сети",
        "сетев",
        "network",
        "vpn",
        "впн",
        "dns",
        "router",
        "роутер",
        "маршрутизатор",
        "switch",
        "коммутатор",
        "кабель",
        "cable",
        "провайдер",
        "isp",
        "ip",
        "домен",
        "domain",
        "сайт",
        "website",
        "скорост",
        "speed",
        "firewall",
        "port",
        "порт",
        "lan",
        "access point",
        "точк доступа",
        "mikrotik",
        "fortigate",
        "ping",
        "пинг",
    ),
    Category.ACCOUNTS_ACCESS: (
        "парол",
        "password",
        "учетн",
        "учетк",
        "логин",
        "login",
        "log in",
        "account",
        "доступ",
        "access",
        "права",
        "permission",
        "заблокир",
        "locked",
        "lockout",
        "новый сотрудник",
        "новая сотрудниц",
        "new employee",
        "new starter",
        "new hire",
        "starter",
        "уволи",
        "увольн",
        "leaver",
        "leaving",
        "dismiss",
        "fired",
        "onboard",
        "offboard",
        "mfa",
        "2fa",
        "active directory",
        "ad",
        "группа",
        "group",
        "role",
        "роль",
        "отключить доступ",
        "disable",
        "reset",
        "сброс",
    ),
    Category.SERVER_INFRA: (
        "сервер",
        "server",
        "srv",
        "бэкап",
        "бекап",
        "backup",
        "резервн",
        "restore",
        "восстанов",
        "file share",
        "share",
        "общ папк",
        "общая папк",
        "общий диск",
        "сетевой диск",
        "сетевая папк",
        "shared drive",
        "network drive",
        "drive",
        "nas",
        "synology",
        "виртуал",
        "vmware",
        "hyper-v",
        "esxi",
        "vcenter",
        "vm",
        "виртуальн",
        "терминальн",
        "terminal server",
        "rdp",
        "удаленн рабоч",
        "sql",
        "база данн",
        "database",
        "ибп",
        "ups",
        "стойк",
        "rack",
        "wms",
        "tms",
        "raid",
        "диск",
        "disk",
        "veeam",
        "видеорегистратор",
        "dvr",
        "nvr",
        "storage",
    ),
    Category.SECURITY: (
        "вирус",
        "virus",
        "антивирус",
        "antivirus",
        "фишинг",
        "phishing",
        "phish",
        "взлом",
        "hack",
        "malware",
        "ransom",
        "шифровальщик",
        "зашифрова",
        "encrypted",
        ".locked",
        ".crypt",
        "троян",
        "trojan",
        "suspicious",
        "подозрит",
        "мошенн",
        "scam",
        "fraud",
        "утечк",
        "leak",
        "kaspersky",
        "касперск",
        "dr.web",
        "defender",
        "threat",
        "угроз",
        "заражен",
        "infected",
        "украл",
        "stolen",
        "кража",
        "флешк",
        "usb stick",
        "teamviewer",
        "anydesk",
        "sign-in from",
        "вход с незнаком",
        "unknown location",
        "незнаком",
        "двухфактор",
        "mfa",
        "уязвим",
        "vulnerab",
        "bitcoin",
        "биткоин",
        "breach",
        "pentest",
        "sextortion",
        "поддельн",
        "fake",
        "spoof",
    ),
    Category.TELEPHONY: (
        "телефон",
        "телефони",
        "атс",
        "sip",
        "phone",
        "pbx",
        "voip",
        "звонк",
        "звонит",
        "дозвон",
        "трубк",
        "гудк",
        "номер",
        "extension",
        "внутренн номер",
        "voicemail",
        "голосов",
        "call center",
        "колл-центр",
        "переадресац",
        "forwarding",
        "dial",
        "handset",
        "yealink",
        "grandstream",
        "asterisk",
        "мегафон",
        "ip-телефон",
        "факс",
        "fax",
    ),
    Category.OTHER: (
        "кофе",
        "coffee",
        "уборк",
        "уборщиц",
        "клининг",
        "cleaning",
        "cleaner",
        "мебел",
        "furniture",
        "стол",
        "стул",
        "chair",
        "desk",
        "кондиционер",
        "air conditioning",
        "ac",
        "ключ",
        "key",
        "лифт",
        "lift",
        "elevator",
        "отоплен",
        "heating",
        "батаре",
        "radiator",
        "тараканы",
        "дезинсекц",
        "pest",
        "такси",
        "taxi",
        "парковк",
        "parking",
        "вода",
        "water",
        "кулер",
        "холодильник",
        "fridge",
        "чайник",
        "kettle",
        "лампочк",
        "ламп",
        "light bulb",
        "жалюзи",
        "blinds",
        "замок",
        "lock",
        "потолок",
        "ceiling",
        "шредер",
        "shredder",
        "договор",
        "contract",
        "счет за",
        "invoice for",
        "спасибо",
        "thank",
        "жалоб",
        "complaint",
        "перезвоните",
        "call me",
        "помогите",
        "help",
        "тест",
        "test",
        "forklift",
        "погрузчик",
        "охран",
        "security desk",
        "badge",
        "пропуск",
        "курьер",
        "courier",
        "ежемесячн отчет",
        "monthly report",
        "microwave",
        "микроволнов",
        "toilet",
        "туалет",
    ),
}


def _stem(stem: str) -> str:
    # Short stems ("ac", "pc", "key") must be whole words, or "ac" would match "access".
    return re.escape(stem) + (r"(?!\w)" if len(stem) <= 3 or stem == "key" else "")


_LEXICON_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (
        str(category),
        re.compile(
            r"(?<!\w)(" + "|".join(_stem(s) for s in sorted(stems, key=len, reverse=True)) + ")"
        ),
    )
    for category, stems in LEXICON.items()
)


def lexicon_hits(text: str) -> list[str]:
    """One ``lex:<category>`` token per lexicon stem found in an already normalised text."""
    tokens: list[str] = []
    for category, pattern in _LEXICON_PATTERNS:
        tokens.extend(f"lex:{category}" for _ in pattern.findall(text))
    return tokens


def lexicon_words(text: str, category: str) -> list[str]:
    """The lexicon stems of one category found in a normalised text, first occurrence first."""
    for name, pattern in _LEXICON_PATTERNS:
        if name == category:
            return list(dict.fromkeys(pattern.findall(text)))
    return []


def ticket_text(subject: str, body: str) -> str:
    """The text the model reads: subject twice (it is the densest part), then the body."""
    text = f"{subject}\n{subject}\n{body}".lower().replace("ё", "е")
    # Numbers (ids, amounts, times, IPs) carry no category; keep them from becoming features.
    return _NOISE.sub("0", text)


def _features(lexicon_weight: float) -> FeatureUnion:
    return FeatureUnion(
        [
            (
                "lexicon",
                TfidfVectorizer(analyzer=lexicon_hits, sublinear_tf=True, dtype=np.float32),
            ),
            (
                "words",
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=(1, 2),
                    min_df=2,
                    max_features=20000,
                    sublinear_tf=True,
                    token_pattern=_TOKENS,
                    dtype=np.float32,
                ),
            ),
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(2, 5),
                    min_df=2,
                    max_features=40000,
                    sublinear_tf=True,
                    dtype=np.float32,
                ),
            ),
        ],
        transformer_weights={"lexicon": lexicon_weight, "words": 1.0, "chars": 1.0},
    )


def _classifier(seed: int, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=2000, random_state=seed)


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model says about one ticket, with the strongest features behind the category."""

    category: Category
    category_confidence: float
    kind: Kind
    kind_confidence: float
    top_features: tuple[str, ...]


class TicketModel:
    """Shared text features, a category and a kind classifier, and metadata.

    Build with ``train`` or ``load``. The features are fitted once and feed both classifiers, so
    a prediction vectorises the text once.
    """

    def __init__(
        self,
        features: FeatureUnion,
        category: LogisticRegression,
        kind: LogisticRegression,
        meta: Mapping[str, Any],
        priority: PriorityModel | None = None,
    ) -> None:
        self.priority = priority
        self._features = features
        self._category = category
        self._kind = kind
        self.meta: dict[str, Any] = dict(meta)
        names: list[str] = []
        for name, vectorizer in features.transformer_list:
            prefix = {"words": "", "chars": "~"}.get(name, "")
            names.extend(f"{prefix}{term}" for term in vectorizer.get_feature_names_out())
        self._feature_names = np.asarray(names, dtype=object)
        self._coef = category.coef_
        self._category_labels = [Category(c) for c in category.classes_]
        self._kind_labels = [Kind(k) for k in kind.classes_]

    @property
    def version(self) -> str:
        """The model version: hash of the corpus and the training code version."""
        return str(self.meta.get("version", "unknown"))

    def predict(self, subject: str, body: str) -> Prediction:
        """Category and kind of one ticket, with confidences and the words behind the category."""
        return self.predict_many([(subject, body)])[0]

    def predict_many(self, tickets: Sequence[tuple[str, str]]) -> list[Prediction]:
        """Predict a batch of (subject, body) pairs: faster per ticket than one at a time."""
        texts = [ticket_text(s, b) for s, b in tickets]
        features = self._features.transform(texts)
        cat_proba = self._category.predict_proba(features)
        kind_proba = self._kind.predict_proba(features)
        out: list[Prediction] = []
        for row in range(len(texts)):
            ci = int(np.argmax(cat_proba[row]))
            ki = int(np.argmax(kind_proba[row]))
            out.append(
                Prediction(
                    category=self._category_labels[ci],
                    category_confidence=round(float(cat_proba[row, ci]), 4),
                    kind=self._kind_labels[ki],
                    kind_confidence=round(float(kind_proba[row, ki]), 4),
                    top_features=self._top_features(texts[row], features[row], ci),
                )
            )
        return out

    def _top_features(self, text: str, row: Any, class_index: int) -> tuple[str, ...]:
        """Word features first (readable), then char n-grams, by contribution to the class.

        The lexicon feature is replaced by the lexicon words actually found in the text.
        """
        row = row.tocsr()
        idx, values = row.indices, row.data
        if idx.size == 0:
            return ()
        contributions = values * self._coef[class_index, idx]
        order = np.argsort(-contributions, kind="stable")
        words: list[str] = []
        chars: list[str] = []
        for position in order:
            if contributions[position] <= 0:
                break
            name = str(self._feature_names[idx[position]])
            if name.startswith("lex:"):
                words.extend(w for w in lexicon_words(text, name[4:]) if w not in words)
            elif name.startswith("~"):
                chars.append(name[1:].strip())
            elif name not in words:
                words.append(name)
            if len(words) >= _TOP_FEATURES:
                break
        picked = words + [c for c in chars if c and not any(c in w for w in words)]
        return tuple(picked[:_TOP_FEATURES])

    def save(self, directory: Path) -> None:
        """Write ``model.joblib`` and ``model.json`` into a directory."""
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {
                "features": self._features,
                "category": self._category,
                "kind": self._kind,
                "priority": self.priority,
            },
            directory / MODEL_FILE,
            compress=3,
        )
        (directory / META_FILE).write_text(
            json.dumps(self.meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )

    @classmethod
    def load(cls, directory: Path) -> "TicketModel":
        """Read a model saved by ``save`` (a trusted, shipped artifact: joblib is pickle)."""
        pipelines = joblib.load(directory / MODEL_FILE)
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        priority = pipelines.get("priority")
        use_model(priority)  # assess_priority decides with the loaded model's priority layer
        return cls(pipelines["features"], pipelines["category"], pipelines["kind"], meta, priority)


def corpus_version(records: Iterable[Mapping[str, Any]]) -> str:
    """sha256 of the training records (canonical JSON, sorted by id) and the code version."""
    digest = hashlib.sha256(TRAINING_CODE_VERSION.encode())
    for record in sorted(records, key=lambda r: str(r["id"])):
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


def train(
    records: Sequence[Mapping[str, Any]],
    *,
    seed: int = 0,
    c: float = 30.0,  # 5-fold CV on the training split: 0.850 at C=10, 0.854 at C=30
    lexicon_weight: float = LEXICON_WEIGHT,
) -> TicketModel:
    """Fit category, kind and priority on labelled records (id, subject, body, category, kind,
    priority)."""
    ordered = sorted(records, key=lambda r: str(r["id"]))
    texts = [ticket_text(str(r["subject"]), str(r["body"])) for r in ordered]
    features = _features(lexicon_weight)
    matrix = features.fit_transform(texts)
    category = _classifier(seed, c).fit(matrix, [str(r["category"]) for r in ordered])
    kind = _classifier(seed, c).fit(matrix, [str(r["kind"]) for r in ordered])
    priority = PriorityModel.fit(
        [(str(r["subject"]), str(r["body"]), Kind(str(r["kind"]))) for r in ordered],
        [str(r["priority"]) for r in ordered],
        seed=seed,
    )
    meta = {
        "version": corpus_version(ordered),
        "code_version": TRAINING_CODE_VERSION,
        "sklearn_version": sklearn.__version__,
        "seed": seed,
        "trained_on": len(ordered),
    }
    return TicketModel(features, category, kind, meta, priority)
