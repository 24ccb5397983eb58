"""A real Dovecot IMAP server for tests and benchmarks, run from a temporary directory.

    server = DovecotServer.start(tmp_path)      # installs dovecot-imapd when missing
    server.add_user("alice", "secret")
    server.deliver("alice", raw_bytes)           # dovecot-lda, like a real MTA
    server.append_many("alice", [raw, ...])      # IMAP APPEND, fast for thousands
    server.kick("alice")                          # kill the user's IMAP connections
    server.flags("alice")                         # {uid: "\\Seen ..."} via doveadm
    server.set_uidvalidity("alice", 12345)
    server.stop()

Loopback only, a free port, passwd-file users (plaintext auth allowed on loopback),
maildir storage owned by ``mail``, no systemd.  Stopped by its own master PID.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DOVECOT",
    "DovecotServer",
    "DovecotUnavailable",
    "ensure_dovecot",
    "fixture_messages",
    "free_port",
    "start_or_skip",
    "unique_messages",
    "with_message_id",
]

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
LDA = "/usr/lib/dovecot/dovecot-lda"


class DovecotUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_dovecot() -> None:
    """Install ``dovecot-imapd``/``dovecot-lmtpd`` with apt when Dovecot is missing."""
    if Path(DOVECOT).exists() and Path(LDA).exists():
        return
    if shutil.which("apt-get") is None:
        raise DovecotUnavailable("dovecot is not installed and apt-get is missing")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "dovecot-imapd", "dovecot-lmtpd"]
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DovecotUnavailable(f"apt-get install dovecot failed: {done.stderr[-500:]}")


def _ids(name: str) -> tuple[int, int]:
    import grp
    import pwd

    try:
        return pwd.getpwnam(name).pw_uid, grp.getgrnam(name).gr_gid
    except KeyError:
        return os.getuid(), os.getgid()


CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
postmaster_address = postmaster@example.test
first_valid_uid = 1
mail_privileged_group =
mailbox_idle_check_interval = {idle_check}
imap_idle_notify_interval = 2 mins
protocol imap {{
  mail_max_userip_connections = 50
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%n
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
}}
"""


@dataclass
class DovecotServer:
    root: Path
    port: int
    conf: Path
    users: dict[str, str] = field(default_factory=dict)
    owned: bool = False  # root was made by start(): removed by stop()

    @classmethod
    def start(
        cls,
        root: Path | None = None,
        *,
        cert: Path | None = None,
        key: Path | None = None,
        idle_check: str = "1 secs",
    ) -> DovecotServer:
        """Write the config under ``root`` and start Dovecot; ``cert``/``key`` enable STARTTLS.

        ``root`` and every parent must be traversable by the ``dovecot`` user (pytest's
        ``tmp_path`` is not: 0700); by default a fresh ``/tmp/crmhub-dovecot-*`` is used
        and removed by :meth:`stop`.
        """
        ensure_dovecot()
        owned = root is None
        root = Path(tempfile.mkdtemp(prefix="crmhub-dovecot-") if root is None else root).resolve()
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir(exist_ok=True)
        uid, gid = _ids("mail")
        os.chmod(root, 0o755)
        os.chmod(root / "run", 0o755)
        os.chown(root / "mail", uid, gid)
        (root / "users").mkdir(exist_ok=True)
        os.chmod(root / "users", 0o755)
        ssl_files = ""
        if cert and key:
            ssl_files = f"ssl_cert = <{cert}\nssl_key = <{key}"
        port = free_port()
        conf = root / "dovecot.conf"
        conf.write_text(
            CONF.format(
                root=root,
                port=port,
                ssl="yes" if ssl_files else "no",
                ssl_files=ssl_files,
                idle_check=idle_check,
            )
        )
        os.chmod(conf, 0o644)
        server = cls(root=root, port=port, conf=conf, owned=owned)
        server._launch()
        return server

    def _wait_port(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise DovecotUnavailable(f"dovecot is not listening on {self.port}: {self.log()[-800:]}")

    @property
    def master_pid(self) -> int | None:
        try:
            return int((self.root / "run" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 10.0) -> None:
        self.kill(timeout)
        if self.owned:
            shutil.rmtree(self.root, ignore_errors=True)

    def kill(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM to its master PID), keeping its files for restart()."""
        pid = self.master_pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        """Stop and start again on the same port (drops every connection)."""
        self.kill(10.0)
        self._launch()

    def _launch(self) -> None:
        # the daemon keeps inherited pipes open: never capture its output with pipes
        err = self.root / "start.err"
        with open(err, "wb") as fh:
            code = subprocess.call(
                [DOVECOT, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=fh
            )
        if code != 0:
            raise DovecotUnavailable(f"dovecot did not start: {err.read_text().strip()}")
        self._wait_port()

    def log(self) -> str:
        try:
            return (self.root / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    # -- users and mail -----------------------------------------------------------

    def add_user(self, user: str, password: str) -> None:
        uid, gid = _ids("mail")
        home = self.root / "home" / user
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, uid, gid)
        os.chown(home.parent, uid, gid)
        self.users[user] = password
        # one passwd-file per user (path with %n): a new user never edits a file Dovecot
        # has cached (a rewritten shared file is picked up unreliably within a second)
        if "/" in user or ":" in user:
            raise ValueError(f"bad user name {user!r}")
        passwd = self.root / "users" / user
        passwd.write_text(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n")
        os.chmod(passwd, 0o644)

    def doveadm(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [DOVEADM, "-c", str(self.conf), *args], capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver like an MTA would (dovecot-lda)."""
        cmd = [LDA, "-c", str(self.conf), "-d", user]
        if folder != "INBOX":
            cmd += ["-m", folder]
        done = subprocess.run(cmd, input=raw, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"dovecot-lda failed: {done.stderr.decode(errors='replace')}")

    def imap(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port)
        conn.login(user, self.users[user])
        return conn

    def append_many(self, user: str, messages: Iterable[bytes], folder: str = "INBOX") -> int:
        """IMAP APPEND over one connection; returns the count."""
        n = 0
        conn = self.imap(user)
        try:
            for raw in messages:
                typ, data = conn.append(folder, "", None, raw)
                if typ != "OK":
                    raise RuntimeError(f"APPEND failed: {data!r}")
                n += 1
        finally:
            conn.logout()
        return n

    def kick(self, user: str) -> None:
        """Kill every IMAP connection of ``user`` (doveadm kick)."""
        self.doveadm("kick", user, check=False)

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, str]:
        out = self.doveadm("fetch", "-u", user, "uid flags", "mailbox", folder, "all")
        result: dict[int, str] = {}
        uid: int | None = None
        for line in out.splitlines():
            if line.startswith("uid:"):
                uid = int(line.split(":", 1)[1])
            elif line.startswith("flags:") and uid is not None:
                result[uid] = line.split(":", 1)[1].strip()
        return result

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        out = self.doveadm("mailbox", "status", "-u", user, "uidvalidity", folder)
        return int(out.strip().split("=", 1)[1])

    def set_uidvalidity(self, user: str, value: int, folder: str = "INBOX") -> None:
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(value), folder)


def with_message_id(raw: bytes, message_id: str) -> bytes:
    """``raw`` with its Message-ID header(s) replaced by ``message_id`` (``<...>``)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    nl = b"\r\n"
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
        nl = b"\n"
    lines = head.split(nl)
    kept: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"message-id:")
        if not skipping:
            kept.append(line)
    return b"Message-ID: " + message_id.encode("ascii") + nl + nl.join(kept) + sep + body


def fixture_messages(directory: Path) -> list[tuple[str, bytes]]:
    """``[(file name, bytes)]`` of every ``*.eml`` under ``directory``, sorted by name."""
    return [(p.name, p.read_bytes()) for p in sorted(Path(directory).glob("*.eml"))]


def unique_messages(directory: Path, count: int, tag: str) -> list[tuple[str, bytes]]:
    """``count`` real messages (the fixtures, cycled), each with its own Message-ID."""
    base = fixture_messages(directory)
    out = []
    for i in range(count):
        mid = f"<{tag}-{i}@bench.example>"
        out.append((mid[1:-1], with_message_id(base[i % len(base)][1], mid)))
    return out


def start_or_skip() -> DovecotServer:
    """A started server for a test fixture; skipped where Dovecot cannot be installed or
    started, failed under ``CI`` (CI must run the email tests against a real server)."""
    import os

    import pytest

    try:
        return DovecotServer.start()
    except DovecotUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Dovecot is required in CI but could not start: {exc}")
        pytest.skip(f"dovecot unavailable: {exc}")
