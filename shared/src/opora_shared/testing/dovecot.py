"""A real Dovecot IMAP server for tests (Debian package ``dovecot-imapd``), and its fixture.

Dovecot runs in the foreground (``dovecot -F -c <tmp>/dovecot.conf``) with a config written to
a temporary directory: IMAP only, on 127.0.0.1 and a free port, no TLS, cleartext login
allowed, a passwd-file of users with random passwords, maildir storage, and every path (runtime
sockets, state, log, mail) under that directory, so it needs no system paths or services.
One server serves the session (stopping Dovecot takes about a second); each test gets a fresh
user, so a fresh mailbox.
Dovecot refuses mail access as root, so when the tests run as root the whole server runs as
``nobody`` (it owns the temporary directory); otherwise as the current user. Readiness is the
IMAP greeting on the port, polled with a deadline. The test side talks to it with the stdlib
``imaplib`` (blocking: call it through ``asyncio.to_thread`` from async tests).

The config is written for Dovecot 2.3 (Debian 12) and, untested here, for 2.4's new syntax.
"""

import contextlib
import ctypes
import functools
import grp
import imaplib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opora_shared.errors import NotReadyError
from opora_shared.nats.server import free_port
from opora_shared.testing.waiting import poll_until

MISSING = "dovecot (Debian package dovecot-imapd) not installed"
ACCOUNTS_PER_BATCH = 200
_LIST_RE = re.compile(rb'^\([^)]*\) (?:NIL|"((?:\\.|[^"\\])*)") (.*)$')

_CONFIG_23 = """\
# Written by opora_shared.testing.dovecot for one test run (Dovecot 2.3 syntax).
protocols = imap
listen = {host}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/mail/%u
namespace inbox {{
  inbox = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"""

_CONFIG_24 = """\
# Written by opora_shared.testing.dovecot for one test run (Dovecot 2.4 syntax).
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
protocols = imap
listen = {host}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
{ssl}
auth_allow_cleartext = yes
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_driver = maildir
mail_path = {root}/mail/%{{user}}
mail_home = {root}/home/%{{user}}
namespace inbox {{
  inbox = yes
}}
passdb passwd-file {{
  passwd_file_path = {root}/passwd
}}
userdb static {{
  fields {{
    uid = {uid}
    gid = {gid}
    home = {root}/home/%{{user}}
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    listen = {host}
    port = {port}
  }}
  inet_listener imaps {{
    listen = {host}
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"""


def find_dovecot() -> str | None:
    """The dovecot binary (on PATH, or /usr/sbin which is not on every user's PATH)."""
    found = shutil.which("dovecot")
    if found:
        return found
    fallback = Path("/usr/sbin/dovecot")
    return str(fallback) if fallback.exists() else None


@functools.cache
def dovecot_version(binary: str) -> tuple[int, int]:
    """Major and minor version of a dovecot binary (``2.3.19.1 (9b53102964)`` -> (2, 3))."""
    out = subprocess.run(  # noqa: S603 - a fixed argument list
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    match = re.match(r"(\d+)\.(\d+)", out.strip())
    if not match:
        msg = f"cannot read the Dovecot version from {out!r}"
        raise NotReadyError(msg)
    return int(match.group(1)), int(match.group(2))


@dataclass
class DovecotServer:
    """One Dovecot process serving IMAP on 127.0.0.1; each test gets an account of its own."""

    root: Path
    binary: str
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    imap_capability: str | None = None
    """Replaces the capabilities advertised after login (e.g. to hide MOVE), when set."""
    tls: bool = False
    """Also serve IMAPS on ``tls_port`` and offer STARTTLS, with a self-signed certificate."""
    tls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _passwords: dict[str, str] = field(default_factory=dict, init=False)
    _unused: list["DovecotAccount"] = field(default_factory=list, init=False)

    @property
    def config_file(self) -> Path:
        """The generated dovecot.conf."""
        return self.root / "dovecot.conf"

    @property
    def log_file(self) -> Path:
        """Dovecot's own log (errors from a failed start are there)."""
        return self.root / "dovecot.log"

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate (for 127.0.0.1 and localhost) clients should trust."""
        return self.root / "cert.pem"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def write_config(self) -> None:
        """Write dovecot.conf and the passwd file, owned by the user Dovecot runs as."""
        account = _run_as()
        extra = ""
        if self.imap_capability is not None:
            extra = f"protocol imap {{\n  imap_capability = {self.imap_capability}\n}}\n"
        new_syntax = dovecot_version(self.binary) >= (2, 4)
        template = _CONFIG_24 if new_syntax else _CONFIG_23
        self.root.mkdir(parents=True, exist_ok=True)
        tls = "ssl = no"
        if self.tls:
            key = self.root / "key.pem"
            _self_signed_certificate(self.ca_file, key)
            if new_syntax:
                tls = (
                    f"ssl = yes\nssl_server_cert_file = {self.ca_file}\nssl_server_key_file = {key}"
                )
            else:
                tls = f"ssl = yes\nssl_cert = <{self.ca_file}\nssl_key = <{key}"
        self.config_file.write_text(
            template.format(
                host=self.host,
                port=self.port,
                root=self.root,
                user=account.pw_name,
                group=grp.getgrgid(account.pw_gid).gr_name,
                uid=account.pw_uid,
                gid=account.pw_gid,
                extra=extra,
                ssl=tls,
                imaps_port=self.tls_port if self.tls else 0,
            )
        )
        self.log_file.touch()  # Dovecot (maybe as nobody) appends to it, and so does start()
        self._add_users()
        _give_away(self.root)

    def add_account(self) -> "DovecotAccount":
        """A user nobody has used yet, with its own random password and an empty mailbox."""
        if not self._unused:
            self._add_users()
            if self.running:  # Dovecot rereads the file, but looks at it once a second at most
                account = self._unused[0]
                poll_until(account.can_log_in, timeout=5, message="Dovecot seeing new users")
        return self._unused.pop(0)

    def _add_users(self) -> None:
        """Add a batch of users to the passwd file (written before Dovecot starts, mostly)."""
        for _ in range(ACCOUNTS_PER_BATCH):
            user = f"user-{secrets.token_hex(6)}"
            password = secrets.token_urlsafe(16)
            self._passwords[user] = password
            self._unused.append(DovecotAccount(server=self, user=user, password=password))
        self._write_passwd()

    def _write_passwd(self) -> None:
        lines = "".join(f"{user}:{{PLAIN}}{pw}\n" for user, pw in self._passwords.items())
        staged = self.root / "passwd.new"
        staged.write_text(lines)
        staged.chmod(0o600)
        _give_away(staged)
        staged.replace(self.root / "passwd")

    def start(self, *, timeout: float = 20.0) -> "DovecotServer":
        """Start Dovecot in the foreground and wait for its IMAP greeting."""
        if not self.config_file.exists():
            self.write_config()
        account = _run_as()
        as_root = os.geteuid() == 0
        # The kernel's parent-death signal follows the *thread* that forked: a server started
        # from asyncio.to_thread would be killed when that worker thread retires.
        in_main_thread = threading.current_thread() is threading.main_thread()
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
                [self.binary, "-F", "-c", str(self.config_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                process_group=0,
                user=account.pw_uid if as_root else None,
                group=account.pw_gid if as_root else None,
                extra_groups=[] if as_root else None,
                preexec_fn=_parent_death_signal() if in_main_thread else None,
            )
        self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, *, timeout: float) -> None:
        """Poll the port for the ``* OK`` greeting with a deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                msg = f"dovecot exited with {self.process.returncode}: {self._log_tail()}"
                raise NotReadyError(msg)
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=1) as sock,
            ):
                sock.settimeout(1)
                if sock.recv(256).startswith(b"* OK"):
                    return
            time.sleep(0.05)
        msg = f"dovecot not ready within {timeout}s on {self.host}:{self.port}: {self._log_tail()}"
        raise NotReadyError(msg)

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM, wait, then SIGKILL the process group (Dovecot takes about 1 s to go)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)

    def restart(self, *, timeout: float = 20.0) -> None:
        """Stop and start again on the same port with the same mail."""
        self.stop()
        self.start(timeout=timeout)

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_file.read_text(errors="replace").splitlines()[-5:])
        return "(no log)"


@dataclass
class DovecotAccount:
    """A test's IMAP user on a Dovecot, with helpers over the stdlib ``imaplib`` (blocking).

    Folder names given to the helpers use ``/`` as the separator, whatever Dovecot's is (its
    maildir default is ``.``), like the poller's configuration.
    """

    server: DovecotServer
    user: str
    password: str
    _delimiter: str | None = field(default=None, init=False)

    @property
    def host(self) -> str:
        """Where Dovecot listens."""
        return self.server.host

    @property
    def port(self) -> int:
        """Dovecot's IMAP port."""
        return self.server.port

    def stop(self) -> None:
        """Stop the server (the next test's fixture starts it again)."""
        self.server.stop()

    def start(self) -> None:
        """Start the server again after ``stop``."""
        self.server.start()

    def restart(self) -> None:
        """Stop and start the server on the same port, mail kept."""
        self.server.restart()

    def can_log_in(self) -> bool:
        """Whether Dovecot accepts this user's password (yet)."""
        try:
            with self.connect():
                return True
        except (imaplib.IMAP4.error, OSError):
            return False

    @contextlib.contextmanager
    def connect(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in stdlib IMAP client, logged out afterwards."""
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                client.logout()

    def folder_name(self, folder: str) -> str:
        """A ``/``-separated folder name in Dovecot's own separator."""
        if self._delimiter is None:
            with self.connect() as client:
                _, data = client.list('""', '""')
            match = _LIST_RE.match(data[0] if isinstance(data[0], bytes) else b"")
            self._delimiter = match.group(1).decode() if match and match.group(1) else "/"
        return folder.replace("/", self._delimiter)

    def append(self, raw: bytes, folder: str = "INBOX", *, flags: str = "") -> None:
        """APPEND a raw message (CRLF line endings keep it byte for byte) to a folder."""
        with self.connect() as client:
            name = _quote(self.folder_name(folder))
            status, data = client.append(name, f"({flags})" if flags else "", None, raw)
        if status != "OK":
            msg = f"APPEND failed: {data!r}"
            raise AssertionError(msg)

    def uids(self, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
        """UIDs in a folder matching a search (ALL by default); [] when it does not exist."""
        with self.connect() as client:
            status, _ = client.select(_quote(self.folder_name(folder)), readonly=True)
            if status != "OK":
                return []
            _, data = client.uid("SEARCH", criteria)
        return sorted(int(token) for token in (data[0] or b"").split())

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        """The raw messages of a folder, by UID (read-only: no flag changes)."""
        with self.connect() as client:
            status, _ = client.select(_quote(self.folder_name(folder)), readonly=True)
            if status != "OK":
                return []
            _, data = client.uid("SEARCH", "ALL")
            raws: list[bytes] = []
            for uid in (data[0] or b"").split():
                _, parts = client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                raws.extend(part[1] for part in parts if isinstance(part, tuple))
        return raws

    def folders(self) -> list[str]:
        """Every folder name as Dovecot spells it (its separator, modified UTF-7)."""
        with self.connect() as client:
            _, data = client.list()
        names = []
        for line in data:
            match = _LIST_RE.match(line) if isinstance(line, bytes) else None
            if match:
                name = match.group(2).decode()
                if name.startswith('"'):
                    name = re.sub(r"\\(.)", r"\1", name[1:-1])
                names.append(name)
        return names


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that makes the child die with its parent.

    ctypes is loaded here, in the parent: the child has already switched to ``nobody`` when
    preexec_fn runs and may not be able to read this Python's library any more.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return preexec


def _run_as() -> pwd.struct_passwd:
    """Who Dovecot runs as: ``nobody`` for root (Dovecot refuses uid 0), else ourselves."""
    if os.geteuid() == 0:
        return pwd.getpwnam("nobody")
    return pwd.getpwuid(os.geteuid())


def _give_away(path: Path) -> None:
    """Hand a path (and what is under it) to the user Dovecot runs as, when we are root."""
    if os.geteuid() != 0:
        return
    account = _run_as()
    for each in [path, *(path.rglob("*") if path.is_dir() else [])]:
        os.chown(each, account.pw_uid, account.pw_gid)


def _self_signed_certificate(cert: Path, key: Path) -> None:
    """A one-day certificate for 127.0.0.1 and localhost, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl (Debian package openssl) not installed")
    subprocess.run(  # noqa: S603 - a fixed argument list
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip


@contextlib.contextmanager
def running_dovecot(
    *, imap_capability: str | None = None, tls: bool = False
) -> Iterator[DovecotServer]:
    """A started Dovecot in a fresh temporary directory, stopped and removed afterwards."""
    binary = find_dovecot()
    if binary is None:
        pytest.skip(MISSING)
    # Not pytest's tmp_path: its parents are private to root, and Dovecot may run as nobody.
    root = Path(tempfile.mkdtemp(prefix="opora-dovecot-"))
    root.chmod(0o755)
    server = DovecotServer(root=root, binary=binary, imap_capability=imap_capability, tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    """The session's Dovecot (started once: it takes about a second to stop)."""
    with running_dovecot() as server:
        yield server


@pytest.fixture
def dovecot(dovecot_server: DovecotServer) -> DovecotAccount:
    """A fresh IMAP user with an empty mailbox on the session's Dovecot (running)."""
    if not dovecot_server.running:  # an earlier test stopped it and failed before restarting
        dovecot_server.start()
    return dovecot_server.add_account()
