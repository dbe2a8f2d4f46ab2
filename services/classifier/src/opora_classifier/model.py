"""The trained ticket model: category and kind from a ticket's text, with the words behind them.

Four blocks of TF-IDF features, each L2-normalised: domain **lexicon** hits (one shared token
per category, so a word the corpus never saw still counts when the lexicon knows it), **cues**
of the ticket's shape (a machine-generated alert, a forwarded mail, a question, a request, a
fault report), **words** (1-2 grams) and **character n-grams** inside word boundaries (2-5,
which copes with Russian morphology, typos and mixed ru/en terms). Two linear SVMs read them,
one for category and one for kind, each calibrated by temperature scaling on out-of-fold
scores, so a confidence is a probability a threshold can be set on.

scikit-learn fits the vocabularies and the weights; predicting does not go through it. The
fitted model is plain arrays and dicts, and one ticket is vectorised by the code below (a per-word
cache of character n-grams, a sparse dot product), which is what makes ``decide`` fast one
ticket at a time. Training and prediction share that code, so they cannot drift apart.

Training is deterministic (fixed seeds, input sorted by id), so the same corpus and code give
the same model. Pure apart from ``save``/``load``, which touch only the given directory; nothing
here reaches the network.
"""

import hashlib
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped,unused-ignore]
import numpy as np
import sklearn  # type: ignore[import-untyped,unused-ignore]
from scipy.optimize import minimize_scalar  # type: ignore[import-untyped,unused-ignore]
from scipy.sparse import csr_matrix, hstack  # type: ignore[import-untyped,unused-ignore]
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped,unused-ignore]
from sklearn.model_selection import (  # type: ignore[import-untyped,unused-ignore]
    StratifiedKFold,
    cross_val_predict,
)
from sklearn.svm import LinearSVC  # type: ignore[import-untyped,unused-ignore]

from opora_classifier.conditions import alternation
from opora_classifier.priority import (
    find_signals,
    rule_priority,
    signal_tokens,
    use_model,
)
from opora_shared.vocabulary import Category, Kind, Priority

TRAINING_CODE_VERSION = "model-4"
"""Bump when features or hyper-parameters change: it is part of the model version."""

ARTIFACT_FORMAT = 2
MODEL_FILE = "model.joblib"
META_FILE = "model.json"
_TOP_FEATURES = 5
SVM_C = 0.5  # 5-fold CV on the training split: category 0.5 ≈ 1.0 > 0.25
KIND_C = 1.0  # kind gains a point at 1.0 over 0.5 in the same CV
BLOCK_WEIGHTS = {"lexicon": 0.7, "cues": 1.0, "words": 1.0, "chars": 1.0}
_TOKENS = r"(?u)\b\w[\w\-]*\w\b|\b\w\b"  # keeps "wi-fi", "1с", "e-mail"
_NOISE = re.compile(r"\d{2,}")
_CHAR_CACHE_LIMIT = 200_000

# Domain hints: what a team lead would name for each category. Each entry is a regular
# expression matched at a word start on lowercased text with ё folded to е (an entry starting
# with a backslash, such as "\.locked" or "\?", is matched anywhere); a trailing "$" means the
# word ends there ("ac$" is not "access"). Every hit becomes one shared feature per category.

LEXICON: dict[Category, tuple[str, ...]] = {
    Category.EMAIL: (
        r"почт(?!и$)",
        r"письм",
        r"писем$",
        r"e-?mail",
        r"имейл",
        r"мейл",
        r"mail$",
        r"mails$",
        r"mailbox",
        r"inbox",
        r"outbox",
        r"outlook",
        r"аутлук",
        r"owa$",
        r"exchange online",
        r"ящик",
        r"рассылк",
        r"спам",
        r"spam$",
        r"junk",
        r"нежелательн",
        r"вложени",
        r"attachment",
        r"автоответ",
        r"out[- ]of[- ]office",
        r"auto-?reply",
        r"подпис[ьи] в (?:письм|outlook|почт)",
        r"email signature",
        r"пересылк",
        r"distribution list",
        r"shared mailbox",
        r"alias",
        r"календар",
        r"calendar",
        r"smtp",
        r"imap",
        r"pop3",
        r"dkim",
        r"spf$",
        r"dmarc",
        r"mx[- ]запис",
        r"mx record",
        r"недоставлен",
        r"не доставлен",
        r"undeliverable",
        r"bounc",
        r"возвращаются",
        r"отозвать письмо",
        r"recall (?:an |the |my )?e?mail",
        r"thunderbird",
        r"gmail",
        r"яндекс ?360",
        r"google workspace",
    ),
    Category.PRINTING: (
        r"принтер",
        r"печат(?!ь организац)",
        r"распечат",
        r"сканер(?! штрих)",
        r"сканир",
        r"скан(?:ы|ов)?$",
        r"мфу",
        r"картридж",
        r"тонер",
        r"замял",
        r"замятие",
        r"зажева",
        r"жует",
        r"мнет",
        r"бумаг",
        r"лот(?:ок|ке|ка)$",
        r"ксерокс",
        r"копир",
        r"kyocera",
        r"куосер",
        r"киосер",
        r"laserjet",
        r"brother",
        r"xerox",
        r"ricoh",
        r"epson",
        r"konica",
        r"pantum",
        r"фотобарабан",
        r"барабан",
        r"фьюзер",
        r"термопринтер",
        r"этикет",
        r"zebra",
        r"printer",
        r"print",
        r"scan to",
        r"scanning",
        r"scans$",
        r"scanner(?! gun)",
        r"mfp",
        r"mfd",
        r"copier",
        r"photocopier",
        r"toner",
        r"cartridge",
        r"ink$",
        r"jam$",
        r"jammed",
        r"jams$",
        r"paper",
        r"tray",
        r"drum unit",
        r"fuser",
        r"label printer",
        r"plotter",
    ),
    Category.ACCOUNTING_SOFTWARE: (
        r"1[сc]$",
        r"1[сc][:\- ]",
        r"1[сc]-",
        r"бухгалтерия предприятия",
        r"бп ?3",
        r"зуп$",
        r"зуп[еау]$",
        r"управление торговлей",
        r"ут ?1[01]",
        r"унф",
        r"erp$",
        r"контур",
        r"экстерн",
        r"сбис",
        r"диадок",
        r"эдо$",
        r"эцп",
        r"рутокен",
        r"банк-клиент",
        r"клиент-банк",
        r"клиент банк",
        r"интернет-банк",
        r"выписк",
        r"проводк",
        r"зарплат",
        r"отпускн",
        r"больничн",
        r"ндфл",
        r"ндс$",
        r"рсв$",
        r"сзв",
        r"отчетност",
        r"декларац",
        r"накладн",
        r"упд$",
        r"счет[- ]фактур",
        r"акт сверки",
        r"сверк",
        r"оборотно",
        r"сальдо",
        r"себестоимост",
        r"номенклатур",
        r"контрагент",
        r"конфигурац",
        r"платежк",
        r"платежн(?:ое|ые|ых) поручени",
        r"честный знак",
        r"маркировк",
        r"егаис",
        r"меркурий",
        r"печатн(?:ая|ую|ой) форм",
        r"accounting",
        r"accounts payable",
        r"accounts receivable",
        r"quickbooks",
        r"xero",
        r"sage$",
        r"sage 50",
        r"netsuite",
        r"sap$",
        r"dynamics",
        r"business central",
        r"navision",
        r"general ledger",
        r"ledger",
        r"general journal",
        r"posting",
        r"invoice",
        r"credit note",
        r"payroll",
        r"payslip",
        r"pay run",
        r"bank feed",
        r"bank file",
        r"reconcil",
        r"chart of accounts",
        r"period close",
        r"closing the period",
        r"vat return",
        r"tax code",
        r"aged (?:debtors|receivables|payables)",
        r"billing module",
    ),
    Category.WORKSTATION: (
        r"компьютер",
        r"комп(?:а|у|ом|е|ы|ов)?$",
        r"пк$",
        r"системник",
        r"системн(?:ый|ого|ом) блок",
        r"ноутбук",
        r"ноут(?:а|у|е|ом)?$",
        r"макбук",
        r"моноблок",
        r"windows",
        r"виндовс",
        r"винд(?:а|у|ы|е)$",
        r"рабоч(?:ий|его|ем) стол",
        r"мыш(?:ь|ка|ки|ку|кой)$",
        r"клавиатур",
        r"монитор(?!инг)",
        r"синий экран",
        r"bsod",
        r"ворд",
        r"word$",
        r"excel",
        r"эксел",
        r"powerpoint",
        r"microsoft office",
        r"офисный пакет",
        r"onedrive",
        r"гарнитур",
        r"наушник",
        r"веб-?камер",
        r"webcam",
        r"usb",
        r"флешк",
        r"флеш-?накопител",
        r"док-станц",
        r"docking station",
        r"браузер",
        r"browser",
        r"chrome",
        r"хром$",
        r"firefox",
        r"adobe",
        r"acrobat",
        r"pdf",
        r"проектор",
        r"projector",
        r"hdmi",
        r"displayport",
        r"переходник",
        r"зарядк",
        r"charger",
        r"диск[еау]? [cс]$",
        r"[cс]:",
        r"c drive",
        r"профил[ьяе]",
        r"ярлык",
        r"shortcut",
        r"штрих-?код",
        r"barcode",
        r"планшет",
        r"tablet",
        r"ipad",
        r"computer",
        r"pc$",
        r"pcs$",
        r"desktop",
        r"laptop",
        r"notebook",
        r"macbook",
        r"imac",
        r"keyboard",
        r"mouse",
        r"monitor(?!ing)",
        r"screen(?!shot)",
        r"display",
        r"headset",
        r"blue screen",
        r"boot",
        r"bios",
        r"overheat",
        r"windows update",
        r"обновлени[ея] windows",
        r"fan$",
        r"вентилятор",
        r"(?:ms |microsoft )teams",
        r"teams (?:call|meeting|app|client)",
        r"zoom",
        r"7-?zip",
        r"winrar",
        r"архиватор",
        r"установ(?:ить|ите|ка) программ",
        r"install (?:the )?(?:software|program|app)",
        r"notepad",
    ),
    Category.NETWORK: (
        r"интернет(?!-банк|-магазин)",
        r"internet",
        r"wi-?fi",
        r"вай-? ?фай",
        r"вайфай",
        r"wlan",
        r"сеть$",
        r"сети$",
        r"сетев(?:ой|ая|ую) (?:кабел|карт|розетк)",
        r"network(?! drive| path| share| folder| printer)",
        r"vpn",
        r"впн",
        r"forticlient",
        r"anyconnect",
        r"wireguard",
        r"openvpn",
        r"dns",
        r"dhcp",
        r"ip-?адрес",
        r"ip$",
        r"ip address",
        r"роутер",
        r"маршрутизатор",
        r"router",
        r"микротик",
        r"mikrotik",
        r"fortigate",
        r"фаервол",
        r"файрвол",
        r"firewall",
        r"коммутатор",
        r"свитч",
        r"switch$",
        r"кабел",
        r"cable",
        r"патч-?корд",
        r"провайдер",
        r"isp$",
        r"точк[аиуе] доступа",
        r"access point",
        r"lan$",
        r"wan$",
        r"пинг",
        r"ping",
        r"потер[ьи] пакетов",
        r"packet loss",
        r"latency",
        r"скорост",
        r"bandwidth",
        r"домен(?!н)",
        r"domain(?! controller| account| admin)",
        r"сайт",
        r"website",
        r"порт(?:ы|а)?$",
        r"проброс",
        r"port forward",
        r"vlan",
        r"подсет",
        r"subnet",
        r"gateway",
        r"шлюз",
        r"туннел",
        r"tunnel",
        r"site-to-site",
        r"филиал",
        r"канал(?:а)? (?:связи|интернет)",
        r"интернет-канал",
        r"гостев(?:ая|ую|ой) сет",
        r"guest (?:wi-?fi|network)",
        r"connectivity",
    ),
    Category.ACCOUNTS_ACCESS: (
        r"парол",
        r"password",
        r"passcode",
        r"учетн(?:ая|ой|ую|ые|ых) запис",
        r"учетк",
        r"логин",
        r"login",
        r"log ?in",
        r"log on",
        r"sign[- ]?in(?! from)",
        r"не могу войти",
        r"не пускает",
        r"доступ",
        r"access",
        r"прав(?:а|ами)? (?:доступа|администратора|админа)",
        r"права$",
        r"permission",
        r"rights",
        r"заблокир",
        r"разблокир",
        r"locked out",
        r"lockout",
        r"account (?:is |was |got )?locked",
        r"учетная запись заблокирована",
        r"нов(?:ый|ого|ому|ая|ой|ую) сотрудни",
        r"новичк",
        r"new (?:starter|hire|employee|joiner|user)",
        r"starts? (?:on )?monday",
        r"выходит (?:на работу|в понедельник)",
        r"onboard",
        r"offboard",
        r"уволи",
        r"увольн",
        r"уволен",
        r"декрет",
        r"leaver",
        r"left the company",
        r"leaving",
        r"let go",
        r"dismiss",
        r"fired",
        r"resign",
        r"maternity",
        r"перевели в",
        r"переводится",
        r"mfa",
        r"2fa",
        r"двухфактор",
        r"authenticator",
        r"код(?:ы|а|ов)? (?:подтверждени|входа|из приложени)",
        r"кодов входа",
        r"active directory",
        r"ad$",
        r"security group",
        r"группа безопасности",
        r"учетн(?:ой|ую) запис",
        r"account(?!s? (?:manager|payable|receivable))s?$",
        r"username",
        r"имя пользователя",
        r"disable (?:his|her|their|the) account",
        r"отключ(?:ить|ите) (?:учетк|доступ)",
        r"name change",
        r"смен(?:а|ил[аи]?) фамили",
        r"keepass",
    ),
    Category.SERVER_INFRA: (
        r"сервер",
        r"srv",
        r"server",
        r"бэкап",
        r"бекап",
        r"backup",
        r"back up",
        r"резервн",
        r"restore",
        r"восстанов(?:ить|ите|ление) (?:из|с) ",
        r"общ(?:ая|ей|ую|ие|их) папк",
        r"общ(?:ий|его|ем|ему) диск",
        r"сетев(?:ой|ого|ом|ые|ых) диск",
        r"сетев(?:ая|ой|ую|ые|ых) папк",
        r"файлов(?:ый|ого|ом|ое) (?:сервер|хранилищ)",
        r"шар[ауе]$",
        r"file share",
        r"shared (?:drive|folder)",
        r"network (?:drive|share|folder|path)",
        r"mapped drive",
        r"[a-z]: drive",
        r"nas$",
        r"synology",
        r"qnap",
        r"хранилищ",
        r"storage",
        r"виртуал",
        r"vmware",
        r"hyper-?v",
        r"хайпер",
        r"esxi",
        r"vcenter",
        r"vsphere",
        r"vm$",
        r"vms$",
        r"вм$",
        r"virtual machine",
        r"терминальн",
        r"terminal server",
        r"удаленн(?:ый|ого|ом) рабоч",
        r"remote desktop",
        r"rdp",
        r"sql",
        r"база данн",
        r"баз[аеуы] 1[сc]",
        r"database",
        r"контроллер домена",
        r"domain controller",
        r"ибп",
        r"ups$",
        r"стойк",
        r"rack",
        r"серверн",
        r"server room",
        r"raid",
        r"рейд",
        r"жестк(?:ий|ого|ие|их) диск",
        r"hard drive",
        r"disk",
        r"veeam",
        r"acronis",
        r"видеорегистратор",
        r"регистратор",
        r"видеонаблюден",
        r"камер(?:ы|ам|ах) наблюдения",
        r"dvr",
        r"nvr",
        r"cctv",
        r"snapshot",
        r"снимок",
        r"реплик",
        r"wms",
        r"tms",
    ),
    Category.SECURITY: (
        r"вирус",
        r"антивирус",
        r"virus",
        r"antivirus",
        r"anti-virus",
        r"malware",
        r"фишинг",
        r"phish",
        r"взлом",
        r"hack",
        r"шифровальщик",
        r"зашифрова",
        r"encrypted",
        r"ransom",
        r"выкуп",
        r"вымогат",
        r"\.locked",
        r"\.crypt",
        r"троян",
        r"trojan",
        r"подозрительн",
        r"suspicious",
        r"мошенн",
        r"scam",
        r"fraud",
        r"утечк",
        r"слил",
        r"data leak",
        r"leaked",
        r"breach",
        r"касперск",
        r"kaspersky",
        r"dr\.? ?web",
        r"доктор веб",
        r"eset",
        r"defender",
        r"sophos",
        r"crowdstrike",
        r"threat",
        r"угроз",
        r"зараж",
        r"infected",
        r"украл",
        r"украден",
        r"кража",
        r"stolen",
        r"theft",
        r"sign-in from",
        r"unusual sign-in",
        r"unknown location",
        r"вход с незнаком",
        r"незнаком(?:ого|ое|ый) (?:устройств|ip|компьютер)",
        r"подмен",
        r"поддельн",
        r"фейков",
        r"spoof",
        r"fake",
        r"impersonat",
        r"реквизит",
        r"bank details",
        r"wire transfer",
        r"gift card",
        r"bitcoin",
        r"биткоин",
        r"уязвим",
        r"vulnerab",
        r"pentest",
        r"пентест",
        r"penetration test",
        r"аудит безопасности",
        r"security (?:audit|questionnaire|policy)",
        r"brute[- ]?force",
        r"перебор парол",
        r"подбор парол",
        r"ddos",
        r"sextortion",
        r"шантаж",
        r"клик(?:нул|нула)",
        r"перешл?[аи]? по ссылке",
        r"нажал[аи]? на ссылку",
        r"clicked (?:a|the|on)",
        r"keylogger",
        r"teamviewer",
        r"anydesk",
        r"remote control",
        r"usb stick",
        r"usb storage",
        r"block usb",
        r"чужие флешки",
        r"нашли флешку",
        r"found a usb",
        r"политик[аиуе] парол",
        r"password policy",
        r"сложност[ьи] парол",
        r"хран(?:ить|ят|им|ятся) пароли",
        r"keep passwords",
        r"пароли в (?:экселе|excel|таблице)",
        r"от (?:моего|нашего|его|ее) (?:имени|адреса|ящика)",
        r"from my (?:account|address|mailbox)",
        r"(?:i|he|she) didn'?t (?:send|create|write)",
        r"не отправлял",
        r"не писала?",
        r"якобы",
        r"claiming to be",
        r"pretending to be",
        r"торрент",
        r"левые программы",
        r"запустил[аи]? (?:файл|вложение)",
        r"двигается сам",
        r"moving (?:by|on) its own",
        r"обучени[ея] по фишинг",
        r"phishing (?:test|awareness|campaign|simulation)",
        r"spyware",
        r"шпион",
    ),
    Category.TELEPHONY: (
        r"телефон(?!н(?:ая|ую|ой) книг)",
        r"телефони",
        r"атс",
        r"sip",
        r"voip",
        r"ip-телефон",
        r"звонк",
        r"звонит",
        r"звонят",
        r"звонок",
        r"вызов",
        r"дозвон",
        r"трубк",
        r"гудк",
        r"гудок",
        r"внутренн(?:ий|его|ему|ие) номер",
        r"городск(?:ой|ого|ому) номер",
        r"многоканальн",
        r"короткий номер",
        r"голосов(?:ое|ая|ой|ую) (?:меню|почт)",
        r"автоответчик",
        r"переадресац",
        r"колл-?центр",
        r"call-?центр",
        r"yealink",
        r"grandstream",
        r"panasonic",
        r"gigaset",
        r"dect",
        r"asterisk",
        r"freepbx",
        r"3cx",
        r"мегафон",
        r"мтс$",
        r"билайн",
        r"манго",
        r"сим-?карт",
        r"симк",
        r"факс",
        r"ivr",
        r"софтфон",
        r"phone",
        r"telephon",
        r"pbx",
        r"trunk",
        r"calls?$",
        r"calling",
        r"caller",
        r"hunt group",
        r"ring group",
        r"extension",
        r"voicemail",
        r"voice mail",
        r"dial",
        r"handset",
        r"polycom",
        r"auto attendant",
        r"call (?:center|centre|queue|forwarding)",
        r"softphone",
        r"fax",
        r"sim card",
        r"toll",
        r"one-way audio",
        r"hold music",
    ),
    Category.OTHER: (
        r"кофе",
        r"coffee",
        r"уборк",
        r"уборщиц",
        r"клининг",
        r"cleaning",
        r"cleaners?$",
        r"мебел",
        r"furniture",
        r"стол(?:ы|ов)?$",
        r"стул",
        r"кресл",
        r"chairs?$",
        r"desks?$",
        r"кондиционер",
        r"air ?con",
        r"ac$",
        r"ключ(?:и|ей)? от",
        r"ключи$",
        r"keys$",
        r"лифт",
        r"lift$",
        r"elevator",
        r"отоплени",
        r"батаре(?:и|я) (?:отоплени|холодн|еле)",
        r"heating",
        r"radiator",
        r"тарака",
        r"дезинсекц",
        r"грызун",
        r"pest",
        r"mice$",
        r"такси",
        r"taxi",
        r"cab$",
        r"book a car",
        r"парковк",
        r"parking",
        r"кулер",
        r"бутыл",
        r"water (?:cooler|delivery|bottles)",
        r"холодильник",
        r"fridge",
        r"чайник",
        r"kettle",
        r"лампочк",
        r"перегорел",
        r"light bulb",
        r"bulbs?$",
        r"жалюзи",
        r"blinds",
        r"замок",
        r"door lock",
        r"потол",
        r"ceiling",
        r"протечк",
        r"протека",
        r"электрик",
        r"electrician",
        r"сантехн",
        r"plumb",
        r"toilet",
        r"туалет",
        r"шредер",
        r"shredder",
        r"курьер",
        r"courier",
        r"пропуск",
        r"badge",
        r"visitor",
        r"микроволнов",
        r"microwave",
        r"vending",
        r"forklift",
        r"погрузчик",
        r"pallet jack",
        r"dock door",
        r"roller door",
        r"ворота",
        r"телевизор",
        r"кронштейн",
        r"повесить",
        r"канцеляр",
        r"stationery",
        r"охранник",
        r"наш договор",
        r"договор(?:а|у)? (?:обслуживания|с вами)",
        r"service agreement",
        r"our contract",
        r"счет за",
        r"ваш счет",
        r"your invoice",
        r"invoice for",
        r"акт выполненных работ",
        r"жалоб",
        r"претензи",
        r"complaint",
        r"ваш инженер",
        r"your technician",
        r"your engineer",
        r"перезвоните",
        r"позвоните мне",
        r"call me",
        r"call back",
        r"помогите$",
        r"help$",
        r"test$",
        r"тест$",
        r"отчет о проделанной",
        r"monthly report",
        r"новый адрес",
        r"new address",
        r"спасибо за",
        r"спасибо \w+ за",
        r"благодар",
        r"thank you for",
        r"thanks (?:to|for)",
        r"account manager",
        r"аккаунт-?менеджер",
        r"additional hours",
        r"last month'?s invoice",
        r"в сч[её]те за",
        r"do you (?:also )?(?:handle|cover|do)",
        r"вы (?:это )?делаете",
    ),
}

CUES: dict[str, tuple[str, ...]] = {
    "alert": (
        r"\[firing",
        r"\[resolved\]",
        r"\[alerting\]",
        r"\[ok\]",
        r"\[failed\]",
        r"\[success\]",
        r"\[warning\]",
        r"alertname",
        r"severity ?[:=]",
        r"важность ?:",
        r"уровень ?:",
        r"level ?[:=]",
        r"priority ?:",
        r"problem started",
        r"проблема началась",
        r"проблема решена",
        r"problem has been resolved",
        r"problem name",
        r"имя проблемы",
        r"operational data",
        r"операционные данные",
        r"original problem id",
        r"исходный id",
        r"event id",
        r"код события",
        r"log name",
        r"журнал ?:",
        r"status ?: ?(?:failed|success|warning|down|up|error|new)",
        r"статус ?:",
        r"backup job ?:",
        r"backup copy job",
        r"alarm:",
        r"alarm definition",
        r"veeam one",
        r"monitor is (?:down|up)",
        r"triggered",
        r"incident #",
        r"service health",
        r"vzdump",
        r"notification type",
        r"state ?: ?(?:down|up|ok|warning|critical|warn)",
        r"assigned to",
        r"fired time",
        r"event timestamp",
        r"ilo \d",
        r"idrac",
        r"sophos central",
        r"gravityzone",
        r"nagios",
        r"icinga",
        r"checkmk",
        r"proxmox",
        r"unifi",
        r"datadog",
        r"pagerduty",
        r"opsgenie",
        r"uptimerobot",
        r"pingdom",
        r"azure monitor",
        r"cloudwatch",
        r"librenms",
        r"observium",
        r"wazuh",
        r"рассылка мониторинга",
        r"серьезность ?:",
        r"sensor ?:",
        r"monitor ?:",
        r"монитор ?:",
        r"device ?:",
        r"устройство ?:",
        r"host ?:",
        r"хост ?:",
        r"labels ?:",
        r"annotations ?:",
        r"метки ?:",
        r"summary ?=",
        r"description ?=",
        r"instance ?=",
        r"runbook",
        r"value ?:",
        r"значение ?:",
        r"оповещение rmm",
        r"rmm alert",
        r"datto rmm",
        r"ninjaone",
        r"uptime kuma",
        r"prtg",
        r"zabbix",
        r"grafana",
        r"alertmanager",
        r"prometheus",
        r"snmp trap",
        r"logid=",
        r"devname=",
        r"dear user",
        r"уважаемый пользователь",
        r"synology diskstation",
        r"powerchute",
        r"network management card",
        r"vcenter server alarm",
        r"meraki",
        r"security center",
        r"defender for endpoint",
        r"event ?:",
        r"событие ?:",
        r"this is an automated",
        r"автоматическое уведомление",
        r"do not reply",
        r"не отвечайте на",
    ),
    "forwarded": (
        r"original message",
        r"forwarded message",
        r"fw:",
        r"fwd:",
        r"пересыла",
        r"переслал",
        r"от ?:",
        r"from ?:",
        r"sent ?:",
        r"отправлено ?:",
        r"тема ?:",
        r"subject ?:",
        r"got this (?:e?mail|message|alert)",
        r"пришло (?:вот )?такое",
        r"пришло (?:странное )?письмо",
        r"is this (?:real|normal|ok|serious|bad)",
        r"это нормально",
        r"это опасно",
        r"что это значит",
        r"what does (?:this|it) mean",
        r"should i worry",
        r"скриншот",
        r"screenshot",
        r"received this",
        r"получил[аи]? (?:вот )?(?:это|такое)",
    ),
    "question": (
        r"\?",
        r"как$",
        r"how (?:do|can|to|should|long|much)",
        r"what (?:is|are|does|should|do)",
        r"can i",
        r"is it possible",
        r"можно ли",
        r"подскажите",
        r"посоветуйте",
        r"recommend",
        r"что делать",
        r"what should",
        r"where (?:do|can|is|are)",
        r"где$",
        r"куда$",
        r"who (?:renews|pays|should|do)",
        r"кто (?:продлева|оплачива|должен|отвечает)",
        r"is there a way",
        r"есть ли",
        r"нужно ли",
        r"do i need",
        r"should (?:we|i)",
        r"стоит ли",
        r"каки[ем]$",
        r"which",
        r"why",
        r"почему",
        r"зачем",
        r"вопрос",
        r"question",
        r"не подскажете",
        r"правильно ли",
    ),
    "request": (
        r"прошу",
        r"просьба",
        r"сделайте",
        r"настройте",
        r"создайте",
        r"добавьте",
        r"установите",
        r"поставьте",
        r"подключите",
        r"закажите",
        r"купите",
        r"дайте",
        r"выдайте",
        r"заведите",
        r"удалите",
        r"отключите",
        r"перенесите",
        r"смените",
        r"поменяйте",
        r"продлите",
        r"оформите",
        r"организуйте",
        r"нужн[оаы]? (?:создать|добавить|настроить|установить|подключить|сделать|завести|дать|"
        r"выдать|перенести|заменить|купить|заказать)",
        r"please (?:create|add|set ?up|install|give|grant|order|enable|disable|remove|change|"
        r"update|arrange|book|send|move|make|allow|prepare|rotate|restrict|block|forward|convert|roll)",
        r"(?:could|can|would) you (?:please )?(?:create|add|set ?up|install|give|grant|order|"
        r"enable|remove|change|update|arrange|book|send|move|make|allow|prepare|restrict|block|"
        r"forward|convert)",
        r"we(?:'d| would) like",
        r"i(?:'d| would) like",
        r"хотим",
        r"хотелось бы",
        r"i need (?:a|an|access|to get)",
        r"we need (?:a|an)",
        r"нуж(?:ен|на|но)$",
        r"new starter",
        r"starting (?:on )?monday",
        r"starts? (?:on )?(?:monday|tomorrow|next week)",
        r"выходит (?:в понедельник|с понедельника|завтра|на работу|с \d)",
    ),
    "incident": (
        r"не работает",
        r"перестал",
        r"не могу",
        r"не может",
        r"не можем",
        r"не открыва",
        r"не запуска",
        r"не печата",
        r"не приход",
        r"не отправля",
        r"ошибк",
        r"error",
        r"не включа",
        r"сломал",
        r"broken",
        r"stopped",
        r"doesn'?t work",
        r"does not work",
        r"won'?t",
        r"can'?t",
        r"cannot",
        r"isn'?t working",
        r"not working",
        r"fails?$",
        r"failed",
        r"failing",
        r"crash",
        r"завис",
        r"висит",
        r"down$",
        r"упал",
        r"пропал",
        r"исчез",
        r"gone",
        r"missing",
        r"не видит",
        r"не грузит",
        r"не загружа",
        r"тормоз",
        r"slow",
        r"freez",
        r"keeps? (?:crashing|dropping|asking|freezing)",
        r"выдает",
        r"пишет",
        r"says",
        r"shows",
    ),
}
"""Shape cues, read by the same rules as the lexicon: what a ticket looks like, not what it is
about. ``alert`` is a machine-generated payload (the only source of ``monitoring``); ``forwarded``
a person passing one on (``server_infra`` or the like, never monitoring)."""


def _fragment(entry: str) -> str:
    return entry[:-1] + r"(?!\w)" if entry.endswith("$") else entry


def _alternation(entries: Sequence[str]) -> str:
    # Longest entries first, so "shared mailbox" wins over "mail" at the same position.
    return alternation([_fragment(e) for e in sorted(entries, key=len, reverse=True)])


def _compile(groups: Mapping[str, Sequence[str]]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """One pattern per group. The word-start check comes once, before the alternation, so each
    branch starts with a literal the regex engine can reject cheaply (a check per branch would be
    tried at every position: ten times slower); ``alternation`` factors the branches by letter."""
    compiled: list[tuple[str, re.Pattern[str]]] = []
    for name, entries in groups.items():
        anchored = [e for e in entries if not e.startswith("\\")]
        anywhere = [e for e in entries if e.startswith("\\")]
        branches = [rf"(?<!\w)(?:{_alternation(anchored)})"] if anchored else []
        branches += [f"(?:{_alternation(anywhere)})"] if anywhere else []
        compiled.append((str(name), re.compile("(" + "|".join(branches) + ")")))
    return tuple(compiled)


_LEXICON_PATTERNS = _compile({str(category): entries for category, entries in LEXICON.items()})
_CUE_PATTERNS = _compile(CUES)
_PATTERNS = {f"lex:{name}": p for name, p in _LEXICON_PATTERNS} | {
    f"cue:{name}": p for name, p in _CUE_PATTERNS
}


def lexicon_hits(text: str) -> list[str]:
    """One ``lex:<category>`` token per lexicon entry found in an already normalised text."""
    return [f"lex:{name}" for name, pattern in _LEXICON_PATTERNS for _ in pattern.findall(text)]


def cue_hits(text: str) -> list[str]:
    """One ``cue:<shape>`` token per shape cue found in an already normalised text."""
    return [f"cue:{name}" for name, pattern in _CUE_PATTERNS for _ in pattern.findall(text)]


def lexicon_words(text: str, category: str) -> list[str]:
    """The lexicon phrases of one category (or ``cue:<shape>``) found in a normalised text."""
    pattern = _PATTERNS.get(category if ":" in category else f"lex:{category}")
    if pattern is None:
        return []
    # "1с:" and "1с" are one word to a reader: drop the punctuation an entry may end with.
    return list(dict.fromkeys(w for m in pattern.findall(text) if (w := m.strip(" :-=[]"))))


def ticket_text(subject: str, body: str) -> str:
    """The text the model reads: subject twice (it is the densest part), then the body."""
    text = f"{subject}\n{subject}\n{body}".lower().replace("ё", "е")
    # Numbers (ids, amounts, times, IPs) carry no category; keep them from becoming features.
    return _NOISE.sub("0", text)


# --- Features ----------------------------------------------------------------------------------

_WORD_PATTERN = re.compile(_TOKENS)
_ANALYZERS: dict[str, Callable[[str], list[str]]] = {
    "lexicon": lexicon_hits,
    "cues": cue_hits,
}


def _word_terms(text: str) -> list[str]:
    """Word unigrams and bigrams, exactly as scikit-learn's ``analyzer="word"`` makes them."""
    tokens = _WORD_PATTERN.findall(text)
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def _char_grams(word: str) -> list[str]:
    """Character 2-5-grams of one word padded with spaces, as ``analyzer="char_wb"`` makes them."""
    padded = f" {word} "
    grams: list[str] = []
    for n in range(2, 6):
        if len(padded) <= n:
            grams.append(padded)  # a word no longer than n counts once, as in scikit-learn
            break
        grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


def _sklearn_vectorizers() -> dict[str, TfidfVectorizer]:
    """The vectorizers that fit each block's vocabulary and idf (and define its analyzer)."""
    common: dict[str, Any] = {"sublinear_tf": True, "dtype": np.float64}
    return {
        "lexicon": TfidfVectorizer(analyzer=lexicon_hits, lowercase=False, **common),
        "cues": TfidfVectorizer(analyzer=cue_hits, lowercase=False, **common),
        "words": TfidfVectorizer(
            analyzer="word",
            ngram_range=(1, 2),
            min_df=2,
            max_features=20000,
            token_pattern=_TOKENS,
            lowercase=False,
            **common,
        ),
        "chars": TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            min_df=2,
            max_features=40000,
            lowercase=False,
            **common,
        ),
    }


class TextFeatures:
    """The fitted TF-IDF blocks as plain data, and the one vectoriser training and prediction use.

    Column order: lexicon, cues, words, chars. ``row`` vectorises one ticket without building a
    matrix and remembers the last ticket, so the category, kind and priority layers that read the
    same ticket vectorise it once.
    """

    BLOCKS = ("lexicon", "cues", "words", "chars")

    def __init__(
        self,
        vocabularies: Mapping[str, Mapping[str, int]],
        idf: Mapping[str, np.ndarray],
        weights: Mapping[str, float],
    ) -> None:
        self.vocabularies = {b: dict(vocabularies[b]) for b in self.BLOCKS}
        self.idf = {b: np.asarray(idf[b], dtype=np.float64) for b in self.BLOCKS}
        self.weights = {b: float(weights[b]) for b in self.BLOCKS}
        self.offsets: dict[str, int] = {}
        start = 0
        for block in self.BLOCKS:
            self.offsets[block] = start
            start += len(self.vocabularies[block])
        self.size = start
        names: list[str] = [""] * start
        for block, prefix in zip(self.BLOCKS, ("", "", "", "~"), strict=True):
            for term, index in self.vocabularies[block].items():
                names[self.offsets[block] + index] = prefix + term
        self.names = names
        # Global column -> idf, and column -> the block's position, for the vectorised maths.
        self._idf = np.concatenate([self.idf[b] for b in self.BLOCKS]) if start else np.zeros(0)
        self._block_of = np.concatenate(
            [
                np.full(len(self.vocabularies[b]), i, dtype=np.int64)
                for i, b in enumerate(self.BLOCKS)
            ]
        )
        self._weight = np.asarray([self.weights[b] for b in self.BLOCKS])
        self._global = {
            b: {t: i + self.offsets[b] for t, i in self.vocabularies[b].items()}
            for b in ("lexicon", "cues", "words")
        }
        self._char_vocab = {
            t: i + self.offsets["chars"] for t, i in self.vocabularies["chars"].items()
        }
        self._char_cache: dict[str, list[int]] = {}
        self._last: tuple[str, str, np.ndarray, np.ndarray] | None = None

    @classmethod
    def fit(
        cls, texts: Sequence[str], weights: Mapping[str, float] = BLOCK_WEIGHTS
    ) -> "TextFeatures":
        """Fit every block's vocabulary and idf on normalised texts (``ticket_text``)."""
        vocabularies: dict[str, dict[str, int]] = {}
        idf: dict[str, np.ndarray] = {}
        for block, vectorizer in _sklearn_vectorizers().items():
            vectorizer.fit(texts)
            vocabularies[block] = {str(t): int(i) for t, i in vectorizer.vocabulary_.items()}
            idf[block] = np.asarray(vectorizer.idf_, dtype=np.float64)
        return cls(vocabularies, idf, weights)

    def state(self) -> dict[str, Any]:
        """Plain data to save: vocabularies, idf vectors, block weights."""
        return {"vocabularies": self.vocabularies, "idf": self.idf, "weights": self.weights}

    def _columns(self, text: str) -> list[int]:
        """Every in-vocabulary feature occurrence of a normalised text, as global columns."""
        columns: list[int] = []
        for block, analyzer in _ANALYZERS.items():
            vocab = self._global[block]
            columns.extend(vocab[t] for t in analyzer(text) if t in vocab)
        vocab = self._global["words"]
        columns.extend(vocab[t] for t in _word_terms(text) if t in vocab)
        cache, char_vocab = self._char_cache, self._char_vocab
        for word in text.split():
            cached = cache.get(word)
            if cached is None:
                cached = [char_vocab[g] for g in _char_grams(word) if g in char_vocab]
                if len(cache) >= _CHAR_CACHE_LIMIT:
                    cache.clear()
                cache[word] = cached
            columns.extend(cached)
        return columns

    def _weigh(self, columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Counts -> sublinear tf x idf, L2-normalised per block, times the block weight."""
        if not columns:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        counted = Counter(columns)
        index = np.fromiter(counted.keys(), dtype=np.int64, count=len(counted))
        counts = np.fromiter(counted.values(), dtype=np.float64, count=len(counted))
        order = np.argsort(index)
        index, counts = index[order], counts[order]
        values = (1.0 + np.log(counts)) * self._idf[index]
        blocks = self._block_of[index]
        norms = np.sqrt(np.bincount(blocks, weights=values * values, minlength=len(self.BLOCKS)))
        values = values / norms[blocks] * self._weight[blocks]
        return index, values

    def row(self, subject: str, body: str) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and values of one ticket (sorted by column)."""
        last = self._last
        if last is not None and last[0] == subject and last[1] == body:
            return last[2], last[3]
        index, values = self._weigh(self._columns(ticket_text(subject, body)))
        self._last = (subject, body, index, values)
        return index, values

    def matrix(self, tickets: Sequence[tuple[str, str]]) -> Any:
        """A CSR matrix, one row per (subject, body)."""
        return self.matrix_of_texts([ticket_text(s, b) for s, b in tickets])

    def matrix_of_texts(self, texts: Sequence[str]) -> Any:
        """A CSR matrix, one row per normalised text."""
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        for text in texts:
            index, values = self._weigh(self._columns(text))
            indices.append(index)
            data.append(values)
            indptr.append(indptr[-1] + len(index))
        return csr_matrix(
            (
                np.concatenate(data) if data else np.zeros(0),
                np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(texts), self.size),
        )


# --- Linear heads ------------------------------------------------------------------------------


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    proba: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return proba


class LinearHead:
    """Calibrated linear scores: probabilities = softmax(x · W + b), W already temperature-scaled.

    ``W`` is stored feature-major (one row per feature), so one ticket's scores are the sum of a
    few rows: no matrix is built for a single prediction.
    """

    def __init__(self, labels: Sequence[str], weights: np.ndarray, bias: np.ndarray) -> None:
        self.labels = [str(label) for label in labels]
        self.weights = np.ascontiguousarray(weights, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)

    @classmethod
    def fit(
        cls, matrix: Any, labels: Sequence[str], *, seed: int, c: float = SVM_C
    ) -> "LinearHead":
        """A linear SVM, and one temperature fitted on its out-of-fold scores (5 folds)."""
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        svm = LinearSVC(C=c, random_state=seed).fit(matrix, labels)
        out_of_fold = cross_val_predict(
            LinearSVC(C=c, random_state=seed), matrix, labels, cv=folds, method="decision_function"
        )
        classes = [str(label) for label in svm.classes_]
        coef, intercept = np.asarray(svm.coef_), np.asarray(svm.intercept_)
        if len(classes) == 2:  # one score; as two classes' logits (0, s), softmax is sigmoid(s)
            coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
            intercept = np.asarray([0.0, intercept[0]])
            out_of_fold = np.column_stack([np.zeros(len(out_of_fold)), out_of_fold])
        truth = np.asarray([classes.index(str(label)) for label in labels])

        def loss(log_beta: float) -> float:
            proba = _softmax(math.exp(log_beta) * out_of_fold)
            return float(-np.mean(np.log(proba[np.arange(len(truth)), truth] + 1e-12)))

        beta = math.exp(float(minimize_scalar(loss, bounds=(-5.0, 5.0), method="bounded").x))
        return cls(classes, coef.T * beta, intercept * beta)

    def state(self) -> dict[str, Any]:
        """Plain data to save."""
        return {"labels": self.labels, "weights": self.weights, "bias": self.bias}

    def proba(self, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Class probabilities of one vectorised ticket."""
        return _softmax(values @ self.weights[index] + self.bias)

    def proba_matrix(self, matrix: Any) -> np.ndarray:
        """Class probabilities, one row per matrix row."""
        return _softmax(np.asarray(matrix @ self.weights) + self.bias)


# --- The learned priority layer ---------------------------------------------------------------

PRIORITY_C = 0.5
SIGNAL_WEIGHT = 1.0


class PriorityModel:
    """The learned priority layer: the named signals (``priority.py``) and the ticket's text
    features, into a calibrated linear head over P1..P4.

    ``assess_priority`` asks it for a verdict when no strong explicit signal decides.
    """

    def __init__(
        self,
        signals: Mapping[str, int],
        head: LinearHead,
        features: TextFeatures,
        signal_weight: float = SIGNAL_WEIGHT,
    ) -> None:
        self.signals = dict(signals)
        self.head = head
        self.features = features
        self.signal_weight = float(signal_weight)
        self._labels = [Priority(label) for label in head.labels]
        self._text_offset = len(self.signals)

    @staticmethod
    def tokens(subject: str, body: str, kind: Kind) -> list[str]:
        """The signal tokens of one ticket, as ``assess_priority`` builds them."""
        found = find_signals(subject, body, kind)
        return signal_tokens(kind, found, rule_priority(kind, found)[0])

    @classmethod
    def fit(
        cls,
        tickets: Sequence[tuple[str, str, Kind]],
        labels: Sequence[str],
        *,
        features: TextFeatures,
        matrix: Any,
        seed: int = 0,
        c: float = PRIORITY_C,
        signal_weight: float = SIGNAL_WEIGHT,
    ) -> "PriorityModel":
        """Fit on (subject, body, kind) triples, their priority labels and their text matrix."""
        token_lists = [cls.tokens(s, b, k) for s, b, k in tickets]
        vocabulary = {t: i for i, t in enumerate(sorted({t for ts in token_lists for t in ts}))}
        rows = [sorted({vocabulary[t] for t in ts}) for ts in token_lists]
        indptr = np.cumsum([0] + [len(r) for r in rows])
        signal_matrix = csr_matrix(
            (
                np.full(int(indptr[-1]), signal_weight),
                np.asarray([i for r in rows for i in r], dtype=np.int64),
                indptr,
            ),
            shape=(len(rows), len(vocabulary)),
        )
        combined = hstack([signal_matrix, matrix]).tocsr()
        head = LinearHead.fit(combined, list(labels), seed=seed, c=c)
        return cls(vocabulary, head, features, signal_weight)

    def state(self) -> dict[str, Any]:
        """Plain data to save (the text features are saved once, with the model)."""
        return {
            "signals": self.signals,
            "head": self.head.state(),
            "signal_weight": self.signal_weight,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], features: TextFeatures) -> "PriorityModel":
        """Rebuild from ``state`` and the model's text features."""
        return cls(state["signals"], LinearHead(**state["head"]), features, state["signal_weight"])

    def predict(
        self,
        subject: str,
        body: str,
        kind: Kind,  # noqa: ARG002 - the protocol's; the kind is already in the tokens
        tokens: list[str],
    ) -> tuple[Priority, float]:
        """The most probable priority of one ticket and its probability."""
        index, values = self.features.row(subject, body)
        signal_index = [self.signals[t] for t in set(tokens) if t in self.signals]
        weights = self.head.weights
        scores = self.head.bias + values @ weights[index + self._text_offset]
        if signal_index:
            scores = scores + self.signal_weight * weights[signal_index].sum(axis=0)
        proba = _softmax(scores)
        best = int(np.argmax(proba))
        return self._labels[best], float(proba[best])


# --- The model ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model says about one ticket, with the strongest features behind the category."""

    category: Category
    category_confidence: float
    kind: Kind
    kind_confidence: float
    top_features: tuple[str, ...]


class TicketModel:
    """Text features, a category and a kind head, the priority layer, and metadata.

    Build with ``train`` or ``load``. The features feed both heads (and the priority layer), so a
    prediction vectorises the text once.
    """

    def __init__(
        self,
        features: TextFeatures,
        category: LinearHead,
        kind: LinearHead,
        meta: Mapping[str, Any],
        priority: PriorityModel | None = None,
    ) -> None:
        self.priority = priority
        self.features = features
        self._category = category
        self._kind = kind
        self.meta: dict[str, Any] = dict(meta)
        self._category_labels = [Category(c) for c in category.labels]
        self._kind_labels = [Kind(k) for k in kind.labels]
        # Both heads side by side: one ticket's scores come from one gather and one product.
        self._joint_weights = np.hstack([category.weights, kind.weights])
        self._joint_bias = np.concatenate([category.bias, kind.bias])
        self._split = len(category.labels)

    @property
    def version(self) -> str:
        """The model version: hash of the corpus and the training code version."""
        return str(self.meta.get("version", "unknown"))

    def predict(self, subject: str, body: str) -> Prediction:
        """Category and kind of one ticket, with confidences and the words behind the category."""
        index, values = self.features.row(subject, body)
        scores = values @ self._joint_weights[index] + self._joint_bias
        return self._prediction(
            ticket_text(subject, body),
            index,
            values,
            _softmax(scores[: self._split]),
            _softmax(scores[self._split :]),
        )

    def predict_many(self, tickets: Sequence[tuple[str, str]]) -> list[Prediction]:
        """Predict a batch of (subject, body) pairs: one matrix product for all of them."""
        texts = [ticket_text(s, b) for s, b in tickets]
        matrix = self.features.matrix_of_texts(texts)
        cat_proba = self._category.proba_matrix(matrix)
        kind_proba = self._kind.proba_matrix(matrix)
        out: list[Prediction] = []
        for row, text in enumerate(texts):
            start, end = matrix.indptr[row], matrix.indptr[row + 1]
            out.append(
                self._prediction(
                    text,
                    matrix.indices[start:end],
                    matrix.data[start:end],
                    cat_proba[row],
                    kind_proba[row],
                )
            )
        return out

    def _prediction(
        self,
        text: str,
        index: np.ndarray,
        values: np.ndarray,
        cat_proba: np.ndarray,
        kind_proba: np.ndarray,
    ) -> Prediction:
        ci = int(np.argmax(cat_proba))
        ki = int(np.argmax(kind_proba))
        return Prediction(
            category=self._category_labels[ci],
            category_confidence=round(float(cat_proba[ci]), 4),
            kind=self._kind_labels[ki],
            kind_confidence=round(float(kind_proba[ki]), 4),
            top_features=self._top_features(text, index, values, ci),
        )

    def _top_features(
        self, text: str, index: np.ndarray, values: np.ndarray, class_index: int
    ) -> tuple[str, ...]:
        """Word features first (readable), then char n-grams, by contribution to the class.

        A lexicon or cue feature is replaced by the phrases actually found in the text.
        """
        if index.size == 0:
            return ()
        contributions = values * self._category.weights[index, class_index]
        order = np.argsort(-contributions, kind="stable")
        words: list[str] = []
        chars: list[str] = []
        names = self.features.names
        for position in order[:40]:
            if contributions[position] <= 0:
                break
            name = names[int(index[position])]
            if name.startswith(("lex:", "cue:")):
                key = name[4:] if name.startswith("lex:") else name
                words.extend(w for w in lexicon_words(text, key) if w not in words)
            elif name.startswith("~"):
                chars.append(name[1:].strip())
            elif name not in words:
                words.append(name)
            if len(words) >= _TOP_FEATURES:
                break
        picked = words + [c for c in chars if c and not any(c in w for w in words)]
        return tuple(picked[:_TOP_FEATURES])

    def save(self, directory: Path) -> None:
        """Write ``model.joblib`` (plain arrays and dicts) and ``model.json`` into a directory."""
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {
                "format": ARTIFACT_FORMAT,
                "features": self.features.state(),
                "category": self._category.state(),
                "kind": self._kind.state(),
                "priority": self.priority.state() if self.priority is not None else None,
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
        saved = joblib.load(directory / MODEL_FILE)
        if not isinstance(saved, dict) or saved.get("format") != ARTIFACT_FORMAT:
            msg = (
                f"{directory / MODEL_FILE} is not a format-{ARTIFACT_FORMAT} model; run make model"
            )
            raise ValueError(msg)
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        features = TextFeatures(**saved["features"])
        priority = (
            PriorityModel.from_state(saved["priority"], features)
            if saved.get("priority") is not None
            else None
        )
        use_model(priority)  # assess_priority decides with the loaded model's priority layer
        return cls(
            features,
            LinearHead(**saved["category"]),
            LinearHead(**saved["kind"]),
            meta,
            priority,
        )


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
    c: float = SVM_C,
    kind_c: float = KIND_C,
    block_weights: Mapping[str, float] = BLOCK_WEIGHTS,
) -> TicketModel:
    """Fit category, kind and priority on labelled records (id, subject, body, category, kind,
    priority)."""
    ordered = sorted(records, key=lambda r: str(r["id"]))
    texts = [ticket_text(str(r["subject"]), str(r["body"])) for r in ordered]
    features = TextFeatures.fit(texts, block_weights)
    matrix = features.matrix_of_texts(texts)
    category = LinearHead.fit(matrix, [str(r["category"]) for r in ordered], seed=seed, c=c)
    kind = LinearHead.fit(matrix, [str(r["kind"]) for r in ordered], seed=seed, c=kind_c)
    priority = PriorityModel.fit(
        [(str(r["subject"]), str(r["body"]), Kind(str(r["kind"]))) for r in ordered],
        [str(r["priority"]) for r in ordered],
        features=features,
        matrix=matrix,
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
