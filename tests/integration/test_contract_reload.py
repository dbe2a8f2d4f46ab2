"""Contracts live in a watched KV bucket: an edit takes effect without a restart."""

import uuid
from pathlib import Path

import pytest
import yaml
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry

from opora_classifier.app import create_app as classifier_app
from opora_classifier.settings import ClassifierSettings
from opora_shared import subjects
from opora_shared.contract_store import ContractStore, push, seed
from opora_shared.contracts import contract_revision
from opora_shared.events import TicketClassified
from opora_shared.nats.history import last_event
from opora_shared.nats.publish import publish_event
from opora_shared.testing.factories import make_ticket_received
from opora_shared.testing.waiting import wait_for
from opora_shared.vocabulary import Scope

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ONE_C = ("1С не формирует отчёт", "Отчёт по продажам в 1С выдаёт ошибку при формировании")


def write_tenant(directory: Path, tenant: str, *, billable_1c: bool = False) -> Path:
    """A copy of Vector's contract under a fresh tenant id (1C included unless told)."""
    data = yaml.safe_load((DEPLOY / "contracts" / "vector.yml").read_text(encoding="utf-8"))
    data["tenant"] = tenant
    data["domains"] = [f"{tenant}.test"]
    data["approver"] = f"boss@{tenant}.test"
    data["vip_senders"] = []
    included = [c for c in data["services"]["included"] if c != "accounting_software"]
    if billable_1c:
        data["services"]["included"] = included
        data["services"]["billable"] = ["accounting_software"]
    elif "accounting_software" not in data["services"]["included"]:
        data["services"]["included"] = [*included, "accounting_software"]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{tenant}.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def kv(js):
    return await js.key_value(subjects.CONTRACTS_BUCKET)


class TestContractStore:
    async def test_seeds_what_the_bucket_lacks_and_never_overwrites(self, kv, tenant, tmp_path):
        path = write_tenant(tmp_path / "c", tenant)
        assert await seed(kv, tmp_path / "c", None) == [tenant]
        write_tenant(tmp_path / "c", tenant, billable_1c=True)
        assert await seed(kv, tmp_path / "c", None) == []
        assert (await kv.get(tenant)).value != path.read_bytes()

    async def test_follows_pushes_and_ignores_bad_values(self, js, kv, tenant, tmp_path):
        directory = tmp_path / "c"
        first = write_tenant(directory, tenant).read_bytes()
        store = ContractStore(directory, DEPLOY / "team.yml")
        await store.watch(js)
        try:
            assert store.book.get(tenant).revision == contract_revision(first)
            assert store.revisions()[subjects.TEAM_KEY] == store.team.revision

            second = write_tenant(directory, tenant, billable_1c=True).read_bytes()
            pushed = {p.key: p for p in await push(kv, directory, None)}
            assert pushed[tenant].changed
            await wait_for(
                lambda: store.book.get(tenant).revision == contract_revision(second),
                timeout=5,
                message="the pushed contract in use",
            )
            assert store.book.get(tenant).services.scope_of("accounting_software") == "billable"

            await kv.put(tenant, b"tenant: [not, a, contract")
            await kv.put(tenant, second.replace(b"name:", b"nam:"))  # fails validation
            marker = f"m{uuid.uuid4().hex[:8]}"
            write_tenant(directory, marker)
            await push(kv, directory, None)  # a later good change proves the bad ones were read
            await wait_for(lambda: store.book.get(marker), timeout=5, message="the marker")
            assert store.book.get(tenant).revision == contract_revision(second)

            await kv.delete(marker)
            await wait_for(lambda: store.book.get(marker) is None, timeout=5, message="removal")
        finally:
            await store.close()

    async def test_starts_with_every_value_of_the_bucket_even_if_the_end_marker_comes_first(
        self, js, kv, tenant, tmp_path, monkeypatch
    ):
        """nats-py's watch can put its end-of-values marker before the values (see
        opora_shared.nats.kv); the store then started from the files alone."""
        directory = tmp_path / "c"
        write_tenant(directory, tenant)  # the file: 1C included
        newer = write_tenant(tmp_path / "bucket", tenant, billable_1c=True).read_bytes()
        await kv.put(tenant, newer)  # the bucket: a later edit, 1C billable
        watchall = KeyValue.watchall

        async def end_marker_first(self, *args, **kwargs):
            watcher = await watchall(self, *args, **kwargs)
            await watcher._updates.put(None)  # what nats-py does in the race
            return watcher

        monkeypatch.setattr(KeyValue, "watchall", end_marker_first)
        store = ContractStore(directory, DEPLOY / "team.yml")
        await store.watch(js)
        try:
            assert store.book.get(tenant).revision == contract_revision(newer)
            assert store.book.get(tenant).services.scope_of("accounting_software") == "billable"
        finally:
            await store.close()

    async def test_push_validates_everything_before_writing_anything(self, kv, tenant, tmp_path):
        directory = tmp_path / "c"
        write_tenant(directory, tenant)
        (directory / "zz.yml").write_text("tenant: zz\nname: 3\n", encoding="utf-8")
        with pytest.raises(Exception, match=r"zz\.yml"):
            await push(kv, directory, None)
        assert tenant not in await kv.keys()


class TestClassifierHotReload:
    async def test_a_contract_edit_changes_the_next_verdict_and_its_revision(
        self, nats_url, js, kv, tenant, tmp_path
    ):
        directory = tmp_path / "contracts"
        before = contract_revision(write_tenant(directory, tenant).read_bytes())
        app = classifier_app(
            ClassifierSettings(nats_url=nats_url, contracts_dir=directory),
            registry=CollectorRegistry(),
        )
        await app.start()
        try:

            async def classify_one() -> TicketClassified | None:
                received = make_ticket_received(
                    tenant=tenant,
                    subject=ONE_C[0],
                    body=ONE_C[1],
                    requester={"email": f"anna@{tenant}.test"},
                )
                await publish_event(app.broker, received)
                return await wait_for(
                    lambda: last_event(js, TicketClassified, tenant, received.ticket_id),
                    timeout=10,
                    message="classification",
                )

            first = await classify_one()
            assert (first.scope, first.contract_revision) == (Scope.INCLUDED, before)

            after = contract_revision(
                write_tenant(directory, tenant, billable_1c=True).read_bytes()
            )
            await push(kv, directory, None)

            async def reclassified() -> TicketClassified | None:
                verdict = await classify_one()
                return verdict if verdict and verdict.contract_revision == after else None

            second = await wait_for(reclassified, timeout=10, message="the new revision used")
            assert second.scope is Scope.BILLABLE
            assert any("billable" in reason for reason in second.reasons)
        finally:
            await app.stop()


class TestRunFollowsFiles:
    """``opora run`` pushes a contract file the moment it changes, and refuses a bad one."""

    def test_changed_file_is_pushed_and_a_bad_one_is_reported(
        self, nats_url, tenant, tmp_path, capsys
    ):
        import asyncio
        import os

        import nats

        from opora_shared.cli import ContractsFollower

        async def stored() -> bytes | None:
            nc = await nats.connect(nats_url)
            try:
                bucket = await nc.jetstream().key_value(subjects.CONTRACTS_BUCKET)
                return (await bucket.get(tenant)).value
            finally:
                await nc.close()

        directory = tmp_path / "contracts"
        path = write_tenant(directory, tenant)
        follower = ContractsFollower(nats_url, directory, DEPLOY / "team.yml")
        follower.poll(first=True)
        assert asyncio.run(stored()) == path.read_bytes()

        write_tenant(directory, tenant, billable_1c=True)
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
        follower.poll()
        assert asyncio.run(stored()) == path.read_bytes()
        assert f"{tenant} revision" in capsys.readouterr().out

        good = path.read_bytes()
        path.write_text("tenant: [broken", encoding="utf-8")
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))
        follower.poll()
        assert asyncio.run(stored()) == good
        assert "the running ones stay" in capsys.readouterr().err
