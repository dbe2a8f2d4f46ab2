"""The intake's IMAP poller against a real Dovecot (``opora_shared.testing.dovecot``)."""

import asyncio
import contextlib
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from opora_intake.adapters.imap import (
    ImapError,
    ImapMailbox,
    ImapPoller,
    PollerState,
    encode_mailbox_name,
)
from opora_shared.testing.dovecot import DovecotAccount, DovecotServer, running_dovecot
from opora_shared.testing.waiting import wait_for

PROCESSED = "Opora/Processed"
FAILED = "Opora/Failed"


def make_message(n: int) -> bytes:
    """A small raw email with CRLF line endings (as IMAP servers hand mail back)."""
    return (
        f"From: client{n}@romashka.test\r\n"
        "To: support@provider.test\r\n"
        f"Subject: Printer {n} is down\r\n"
        f"Message-ID: <{uuid.uuid4()}@romashka.test>\r\n"
        "\r\n"
        f"The printer on floor {n} does not print.\r\n"
    ).encode()


def mailbox_for(account: DovecotAccount, **overrides: object) -> ImapMailbox:
    """The ImapMailbox of a test user (plain IMAP on loopback unless overridden)."""
    fields: dict[str, object] = {
        "host": account.host,
        "port": account.port,
        "ssl": False,
        "starttls": False,
        "username": account.user,
        "password": account.password,
        "tenant_hint": "romashka",
    }
    return ImapMailbox.model_validate(fields | overrides)


class Recorder:
    """An on_message that records every call and fails when ``fail(raw)`` says so."""

    def __init__(self, fail: Callable[[bytes], bool] = lambda _raw: False) -> None:
        self.calls: list[bytes] = []
        self.handled: list[bytes] = []
        self.fail = fail

    async def __call__(self, raw: bytes) -> None:
        self.calls.append(raw)
        if self.fail(raw):
            msg = "downstream unavailable"
            raise RuntimeError(msg)
        self.handled.append(raw)


@contextlib.asynccontextmanager
async def running(poller: ImapPoller) -> AsyncIterator[asyncio.Event]:
    """``poller.run`` in a task; yields its stop event; stops it (bounded) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def append(account: DovecotAccount, raw: bytes, folder: str = "INBOX") -> None:
    """APPEND from a thread: the stdlib client blocks."""
    await asyncio.to_thread(account.append, raw, folder)


class TestImapPoller:
    async def test_moves_handled_mail_to_processed_folder(self, dovecot):
        messages = [make_message(n) for n in range(3)]
        for raw in messages:
            await append(dovecot, raw)
        recorder = Recorder()
        poller = ImapPoller(mailbox_for(dovecot), recorder)
        try:
            assert await poller.poll_once() == 3
            assert await poller.poll_once() == 0
        finally:
            await poller.aclose()

        assert recorder.calls == messages  # each once, oldest first, bytes unchanged
        assert dovecot.uids("INBOX") == []
        assert dovecot.messages(PROCESSED) == messages
        assert dovecot.uids(FAILED) == []

    async def test_creates_folders_with_the_servers_separator(self, dovecot):
        poller = ImapPoller(mailbox_for(dovecot), Recorder())
        try:
            assert await poller.poll_once() == 0
        finally:
            await poller.aclose()
        # Dovecot's maildir separator is "."; the configuration says "/".
        assert {"Opora.Processed", "Opora.Failed"} <= set(dovecot.folders())

    async def test_accepts_non_ascii_folder_names(self, dovecot):
        await append(dovecot, make_message(1))
        mailbox = mailbox_for(dovecot, processed_folder="Opora/Обработано")
        poller = ImapPoller(mailbox, Recorder())
        try:
            assert await poller.poll_once() == 1
        finally:
            await poller.aclose()
        assert encode_mailbox_name("Opora.Обработано") in dovecot.folders()
        assert len(dovecot.uids(encode_mailbox_name("Opora/Обработано"))) == 1

    async def test_leaves_failed_mail_in_place_and_retries_it_next_pass(self, dovecot):
        first, second = make_message(1), make_message(2)
        await append(dovecot, first)
        await append(dovecot, second)
        failures = iter([True])  # the first message fails once, then goes through
        recorder = Recorder(fail=lambda raw: raw == first and next(failures, False))
        poller = ImapPoller(mailbox_for(dovecot), recorder)
        try:
            assert await poller.poll_once() == 1
            assert dovecot.messages("INBOX") == [first]
            assert dovecot.uids("INBOX", "UNSEEN") == dovecot.uids("INBOX")  # not marked seen
            assert dovecot.messages(PROCESSED) == [second]

            assert await poller.poll_once() == 1
        finally:
            await poller.aclose()
        assert recorder.calls == [first, second, first]
        assert dovecot.uids("INBOX") == []
        assert dovecot.messages(PROCESSED) == [second, first]

    async def test_moves_mail_to_failed_folder_after_five_failures(self, dovecot):
        poison, fine = make_message(1), make_message(2)
        await append(dovecot, poison)
        await append(dovecot, fine)
        recorder = Recorder(fail=lambda raw: raw == poison)
        poller = ImapPoller(mailbox_for(dovecot), recorder)
        try:
            for _ in range(4):
                await poller.poll_once()
                assert dovecot.messages("INBOX") == [poison]
            assert dovecot.uids(FAILED) == []
            await poller.poll_once()
        finally:
            await poller.aclose()
        assert recorder.calls.count(poison) == 5
        assert recorder.calls.count(fine) == 1
        assert dovecot.uids("INBOX") == []
        assert dovecot.messages(FAILED) == [poison]
        assert dovecot.messages(PROCESSED) == [fine]

    async def test_idle_wakes_the_poller_when_mail_arrives(self, dovecot):
        recorder = Recorder()
        poller = ImapPoller(mailbox_for(dovecot, poll_interval_s=60), recorder)
        async with running(poller):
            await wait_for(lambda: poller.state == PollerState.IDLE, message="poller idling")
            raw = make_message(1)
            sent = time.monotonic()
            await append(dovecot, raw)
            await wait_for(lambda: recorder.handled, timeout=5, message="mail handled")
            delay = time.monotonic() - sent
        assert delay < 5.0, f"IDLE took {delay:.2f}s (poll interval 60s)"
        assert recorder.handled == [raw]
        assert dovecot.messages(PROCESSED) == [raw]

    async def test_polls_on_its_interval_when_idle_is_off(self, dovecot):
        recorder = Recorder()
        poller = ImapPoller(mailbox_for(dovecot, idle=False, poll_interval_s=0.2), recorder)
        async with running(poller):
            await wait_for(lambda: poller.state == PollerState.WAITING, message="poller waiting")
            await append(dovecot, make_message(1))
            await wait_for(lambda: recorder.handled, timeout=5, message="mail handled")
        assert dovecot.uids("INBOX") == []

    @pytest.mark.parametrize(
        ("idle", "waiting"), [(True, PollerState.IDLE), (False, PollerState.WAITING)]
    )
    async def test_stop_ends_run_promptly(self, dovecot, idle, waiting):
        poller = ImapPoller(mailbox_for(dovecot, idle=idle, poll_interval_s=60), Recorder())
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        await wait_for(lambda: poller.state == waiting, message=f"poller {waiting}")
        asked = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        assert time.monotonic() - asked < 1.0
        assert poller.state == PollerState.STOPPED

    async def test_survives_a_dovecot_restart(self, dovecot):
        recorder = Recorder()
        poller = ImapPoller(mailbox_for(dovecot), recorder, backoff_max_s=1.0)
        before, after = make_message(1), make_message(2)
        async with running(poller):
            await append(dovecot, before)
            await wait_for(lambda: recorder.handled, message="first mail handled")
            await wait_for(lambda: poller.state == PollerState.IDLE, message="poller idling")

            await asyncio.to_thread(dovecot.restart)
            await append(dovecot, after)
            await wait_for(lambda: len(recorder.handled) == 2, timeout=15, message="reconnected")
        assert recorder.calls == [before, after]
        assert dovecot.uids("INBOX") == []
        assert dovecot.messages(PROCESSED) == [before, after]

    async def test_keeps_trying_while_the_server_is_down(self, dovecot):
        await asyncio.to_thread(dovecot.stop)
        recorder = Recorder()
        poller = ImapPoller(mailbox_for(dovecot), recorder, backoff_max_s=0.5)
        async with running(poller):
            await wait_for(lambda: poller.state == PollerState.BACKOFF, message="backing off")
            await asyncio.to_thread(dovecot.start)
            await append(dovecot, make_message(1))
            await wait_for(lambda: recorder.handled, timeout=10, message="mail handled")

    async def test_reports_a_refused_login(self, dovecot):
        mailbox = mailbox_for(dovecot, password="wrong")
        poller = ImapPoller(mailbox, Recorder())
        with pytest.raises(ImapError, match="login refused"):
            await poller.poll_once()


class TestImapPollerWithoutMove:
    async def test_copies_and_expunges_only_that_uid(self):
        with running_dovecot(imap_capability="IMAP4rev1 LITERAL+ IDLE UIDPLUS") as dovecot:
            account = dovecot.add_account()
            flagged = make_message(0)  # someone flagged it \Deleted: it is theirs to expunge
            await asyncio.to_thread(account.append, flagged, "INBOX", flags="\\Deleted")
            raw = make_message(1)
            await append(account, raw)
            recorder = Recorder()
            poller = ImapPoller(mailbox_for(account), recorder)
            try:
                assert await poller.poll_once() == 1
            finally:
                await poller.aclose()
            assert recorder.calls == [raw]
            assert account.messages("INBOX") == [flagged]
            assert account.messages(PROCESSED) == [raw]

    async def test_never_expunges_without_uidplus(self):
        with running_dovecot(imap_capability="IMAP4rev1 LITERAL+ IDLE") as dovecot:
            account = dovecot.add_account()
            raw = make_message(1)
            await append(account, raw)
            recorder = Recorder()
            poller = ImapPoller(mailbox_for(account), recorder)
            try:
                assert await poller.poll_once() == 1
                assert await poller.poll_once() == 0  # flagged \Deleted: not handed over again
            finally:
                await poller.aclose()
            assert recorder.calls == [raw]
            assert account.messages(PROCESSED) == [raw]
            assert account.uids("INBOX", "DELETED") == account.uids("INBOX") != []


@pytest.fixture(scope="module")
def tls_dovecot() -> Iterator[DovecotServer]:
    """A Dovecot with IMAPS and STARTTLS on a self-signed certificate."""
    with running_dovecot(tls=True) as server:
        yield server


class TestImapPollerOverTls:
    @pytest.mark.parametrize("mode", ["ssl", "starttls"])
    async def test_moves_handled_mail_over_tls(self, tls_dovecot, mode):
        account = tls_dovecot.add_account()
        raw = make_message(1)
        await append(account, raw)
        port = tls_dovecot.tls_port if mode == "ssl" else tls_dovecot.port
        mailbox = mailbox_for(account, port=port, ssl=mode == "ssl", starttls=mode == "starttls")
        context = ssl.create_default_context(cafile=str(tls_dovecot.ca_file))
        recorder = Recorder()
        poller = ImapPoller(mailbox, recorder, ssl_context=context)
        try:
            assert await poller.poll_once() == 1
        finally:
            await poller.aclose()
        assert recorder.calls == [raw]
        assert account.messages(PROCESSED) == [raw]
        # Dovecot's login line says how the session was secured; the test side logs in plain.
        assert any(
            "Login:" in line and f"user=<{account.user}>" in line and "TLS" in line
            for line in tls_dovecot.log_file.read_text().splitlines()
        )

    async def test_refuses_an_untrusted_certificate(self, tls_dovecot):
        account = tls_dovecot.add_account()
        mailbox = mailbox_for(account, port=tls_dovecot.tls_port, ssl=True)
        poller = ImapPoller(mailbox, Recorder())  # the system's CAs: self-signed is refused
        with pytest.raises(ImapError, match="SSLCertVerificationError"):
            await poller.poll_once()
