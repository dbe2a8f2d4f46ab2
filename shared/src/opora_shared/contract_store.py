"""Where services get contracts and the team file: a watched JetStream KV bucket.

Contracts are code: YAML files under ``deploy/contracts/`` and ``deploy/team.yml``.
``opora contracts push`` (and ``opora run``, at start and whenever a file changes) validates
them and puts their text into the ``opora_contracts`` bucket, one key per tenant and ``_team``
for the team. Every service watches the bucket and swaps in the new contract the moment it
changes, with no restart; the classifier records the revision (the text's hash) it used.

A service first loads its local files (so it can work before NATS answers), then ``watch``
seeds the bucket with any tenant it lacks (never overwriting; off with ``seed=False`` for
services whose NATS user may not write the bucket) and follows the bucket from then on.
A bad value in the bucket is logged and ignored: the last good contract stays.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from opora_shared import subjects
from opora_shared.contracts import (
    Contract,
    ContractBook,
    contract_files,
    contract_revision,
    load_contract,
    parse_contract,
)
from opora_shared.errors import ContractError
from opora_shared.nats.kv import current_values, kv_newest
from opora_shared.tasks import stop_task
from opora_shared.team import Team, load_team, parse_team

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pushed:
    """What ``push`` did with one document."""

    key: str
    revision: str
    changed: bool


class ContractStore:
    """Holds the current ContractBook and Team; replaced atomically when the bucket changes."""

    def __init__(
        self, directory: Path, team_file: Path | None = None, *, seed: bool = True
    ) -> None:
        self.directory = directory
        self.team_file = team_file
        self.seed = seed
        self._contracts: dict[str, Contract] = {}
        self._book: ContractBook | None = None
        self._team: Team | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def load(self) -> ContractBook:
        """(Re)load every contract file (and the team file); a bad file raises ContractError."""
        self._contracts = {c.tenant: c for c in ContractBook.from_dir(self.directory)}
        self._book = ContractBook(list(self._contracts.values()))
        if self.team_file is not None:
            self._team = load_team(self.team_file)
        log.info("loaded contracts: %s", ", ".join(sorted(self._contracts)))
        return self._book

    @property
    def book(self) -> ContractBook:
        """The current contracts (loading the files on first use)."""
        return self._book if self._book is not None else self.load()

    @property
    def team(self) -> Team:
        """The provider's team (loading the files on first use)."""
        if self._team is None:
            if self.team_file is None:
                msg = "no team file configured (set OPORA_TEAM_FILE)"
                raise ContractError(msg)
            self.load()
        assert self._team is not None  # noqa: S101 - load() sets it or raises
        return self._team

    def revisions(self) -> dict[str, str]:
        """The revision of each tenant's contract in use, and the team's under ``_team``."""
        result = {tenant: c.revision for tenant, c in self._contracts.items()}
        if self._team is not None:
            result[subjects.TEAM_KEY] = self._team.revision
        return result

    async def watch(self, js: JetStreamContext) -> None:
        """Seed the bucket with what it lacks, load what it holds, then follow its changes."""
        if self._book is None:
            self.load()
        try:
            kv = await js.key_value(subjects.CONTRACTS_BUCKET)
        except BucketNotFoundError:
            log.error(
                "no %s bucket (run 'opora provision'): contracts will not hot-reload",
                subjects.CONTRACTS_BUCKET,
            )
            return
        if self.seed:
            await seed(kv, self.directory, self.team_file)
        newest = await kv_newest(js, subjects.CONTRACTS_BUCKET)
        self._watcher = await kv.watchall()
        for entry in await current_values(self._watcher, newest, timeout=10.0):
            self._apply(entry)
        self._rebuild()
        self._task = asyncio.create_task(self._follow(), name="contracts-watch")

    async def changed(self, timeout: float) -> bool:
        """Wait until the next change is applied (tests and tools); False on timeout."""
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop following the bucket."""
        await stop_task(self._task)
        self._task = None
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()  # type: ignore[no-untyped-call]
            self._watcher = None

    async def _follow(self) -> None:
        assert self._watcher is not None  # noqa: S101 - set by watch()
        async for entry in self._watcher:
            if entry is None:
                continue
            if self._apply(entry):
                self._rebuild()
                self._changed.set()

    def _apply(self, entry: KeyValue.Entry) -> bool:
        """Take one bucket entry; True when something changed."""
        key = entry.key
        if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
            if key == subjects.TEAM_KEY:
                log.warning("the team file was deleted from the bucket; keeping the last one")
                return False
            removed = self._contracts.pop(key, None) is not None
            if removed:
                log.info("contract %s removed", key)
            return removed
        try:
            if key == subjects.TEAM_KEY:
                team = parse_team(entry.value, f"{subjects.CONTRACTS_BUCKET}/{key}")
                if self._team is not None and team.revision == self._team.revision:
                    return False
                self._team = team
                log.info("team file revision %s in use", team.revision)
                return True
            contract = parse_contract(entry.value, f"{subjects.CONTRACTS_BUCKET}/{key}", tenant=key)
        except ContractError as exc:
            log.error("ignored a bad value in the contracts bucket, kept the last good: %s", exc)
            return False
        current = self._contracts.get(key)
        if current is not None and current.revision == contract.revision:
            return False
        self._contracts[key] = contract
        log.info("contract %s revision %s in use", key, contract.revision)
        return True

    def _rebuild(self) -> None:
        try:
            self._book = ContractBook(list(self._contracts.values()))
        except ContractError as exc:  # e.g. two tenants claim one domain: keep the old book
            log.error("contracts not swapped in: %s", exc)


async def seed(kv: KeyValue, directory: Path, team_file: Path | None) -> list[str]:
    """Put the local files whose tenant the bucket lacks (never overwrite); the keys added."""
    added = []
    for path, key in _documents(directory, team_file):
        try:
            await kv.create(key, path.read_bytes())
        except KeyWrongLastSequenceError:
            continue
        added.append(key)
    return added


async def push(kv: KeyValue, directory: Path, team_file: Path | None) -> list[Pushed]:
    """Validate every local file, then put each one whose text differs from the bucket's.

    All files are validated before any is written, so a bad file changes nothing.
    """
    documents = _documents(directory, team_file)
    for path, key in documents:
        if key == subjects.TEAM_KEY:
            load_team(path)
        else:
            load_contract(path)
    result = []
    for path, key in documents:
        raw = path.read_bytes()
        try:
            current = (await kv.get(key)).value
        except NotFoundError:  # never put, or deleted
            current = None
        changed = current != raw
        if changed:
            await kv.put(key, raw)
        result.append(Pushed(key, contract_revision(raw), changed))
    return result


def _documents(directory: Path, team_file: Path | None) -> list[tuple[Path, str]]:
    documents = [(path, path.stem) for path in contract_files(directory)]
    if team_file is not None:
        documents.append((team_file, subjects.TEAM_KEY))
    return documents
