"""A real Asterisk 22 (``../shared/pbx``) on loopback, and sipp phones and callers for it.

    pbx = Pbx.unpack(workdir)            # the tarball, into a short temp dir
    pbx.start()                          # run-asterisk.sh -b with our own config dir
    sipp = Sipp(pbx, workdir)
    sipp.phone("101", "uas_answer.xml", delay_ms=1000)
    call = sipp.call("74950000101", ["89161234567"], talk_ms=2000)
    pbx.stop()                           # by PID

Every port (SIP, AMI, RTP, the phones' and the outbound customers' SIP ports, sipp's
media ports) is picked free at runtime and written into a copy of ``../shared/pbx/etc``,
so two runs on one machine never collide.  Missing Debian packages (``sip-tester`` and
the PBX's runtime libraries) are installed with apt-get, waiting while the dpkg lock is
held.  Only 127.0.0.1; every process is stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "APT_PACKAGES",
    "PBX_HOME",
    "Pbx",
    "PbxUnavailable",
    "Sipp",
    "alive",
    "ensure_packages",
    "free_tcp_port",
    "free_udp_port",
]

ROOT = Path(__file__).resolve().parents[2]
PBX_HOME = Path(os.environ.get("CRMHUB_TEST_PBX") or ROOT.parent / "shared" / "pbx")
APT_PACKAGES = (
    "sip-tester",
    "libedit2",
    "libjansson4",
    "libxml2",
    "libxslt1.1",
    "libsqlite3-0",
    "libssl3",
    "libuuid1",
    "libcrypt1",
    "libstdc++6",
    "libgcc-s1",
)
PHONES = ("101", "102", "103", "104")
# the outbound customers of the sample dialplan: 5090 answers, 5091 busy, 5092 no answer
CUSTOMERS = {"answer": 5090, "busy": 5091, "noanswer": 5092}


class PbxUnavailable(RuntimeError):
    """The PBX cannot be installed or started here (tests skip, or fail under CI)."""


# -- packages ------------------------------------------------------------------------


def _as_root(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0 and shutil.which("sudo"):
        return ["sudo", "-n", *cmd]
    return cmd


def missing_packages(packages: Iterable[str]) -> list[str]:
    pkgs = list(packages)
    if shutil.which("dpkg-query") is None:
        return pkgs
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *pkgs],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = set()
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "ii":
            installed.add(parts[0])
    return [p for p in pkgs if p not in installed]


def ensure_packages(packages: Sequence[str] = APT_PACKAGES, wait_s: float = 300.0) -> None:
    """``apt-get install`` what is missing; while another apt/dpkg holds the lock, wait and
    retry (up to ``wait_s``); run ``apt-get update`` once if a package is unknown."""
    missing = missing_packages(packages)
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise PbxUnavailable(f"missing Debian packages {missing} and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=60"]
    install = _as_root(["apt-get", *lock, "install", "-y", "-q", *missing])
    deadline = time.monotonic() + wait_s
    updated = False
    while True:
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return
        err = done.stderr
        if re.search(r"lock|dpkg was interrupted", err, re.I) and time.monotonic() < deadline:
            time.sleep(3)
            continue
        if not updated:
            updated = True
            subprocess.run(
                _as_root(["apt-get", *lock, "update", "-q"]),
                env=env,
                capture_output=True,
                check=False,
            )
            continue
        raise PbxUnavailable(f"apt-get install {' '.join(missing)} failed: {err.strip()[-600:]}")


# -- ports -----------------------------------------------------------------------------


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _PortBlocks:
    """Blocks of consecutive free UDP ports below the ephemeral range (sipp media ports,
    the PBX's RTP range), never handed out twice in one process."""

    def __init__(self) -> None:
        self.taken: set[int] = set()
        self.rng = random.Random()

    def block(self, size: int, lo: int = 21000, hi: int = 32000) -> int:
        for _ in range(500):
            base = self.rng.randrange(lo, hi - size) // 10 * 10
            ports = range(base, base + size)
            if any(p in self.taken for p in ports):
                continue
            if all(_udp_free(p) for p in ports):
                self.taken.update(ports)
                return base
        raise PbxUnavailable(f"no {size} consecutive free UDP ports in {lo}-{hi}")


PORTS = _PortBlocks()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (the PBX is not our child after -b)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stop_pid(pid: int, sig: int = signal.SIGTERM, wait_s: float = 15.0) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)


# -- the PBX ---------------------------------------------------------------------------


def _sub(text: str, pattern: str, repl: str, what: str) -> str:
    out, n = re.subn(pattern, repl, text, flags=re.M)
    if n == 0:
        raise PbxUnavailable(f"the sample config changed: {what} ({pattern!r}) not found")
    return out


@dataclass
class Pbx:
    """One Asterisk tree, unpacked under ``root`` and configured from ``etc``."""

    root: Path
    etc: Path
    sip_port: int
    ami_port: int
    rtp_start: int
    phones: dict[str, int]
    customers: dict[str, int]
    pid: int | None = None
    home: Path = PBX_HOME

    @classmethod
    def unpack(cls, home: Path = PBX_HOME) -> Pbx:
        """Unpack the tarball into a short temp dir (the control socket path must stay under
        108 bytes) and write a config dir with free ports."""
        tarballs = sorted(home.glob("asterisk-*.tar.xz"))
        if not tarballs:
            raise PbxUnavailable(f"no asterisk-*.tar.xz in {home}")
        root = Path(tempfile.mkdtemp(prefix="lpbx-", dir="/tmp"))
        with tarfile.open(tarballs[-1]) as tar:
            tar.extractall(root, filter="tar")
        pbx = cls(
            root=root,
            etc=root / "conf",
            sip_port=free_udp_port(),
            ami_port=free_tcp_port(),
            rtp_start=PORTS.block(200),
            phones={ext: free_udp_port() for ext in PHONES},
            customers={k: free_udp_port() for k in CUSTOMERS},
            home=home,
        )
        pbx.write_config()
        return pbx

    @property
    def asterisk(self) -> list[str]:
        return [str(self.root / "sbin" / "asterisk"), "-C", str(self.conf_file)]

    @property
    def conf_file(self) -> Path:
        return self.root / "etc" / "asterisk" / "asterisk.conf"

    @property
    def monitor_dir(self) -> Path:
        return self.root / "var" / "spool" / "asterisk" / "monitor"

    @property
    def log_dir(self) -> Path:
        return self.root / "var" / "log" / "asterisk"

    def write_config(self) -> None:
        """``home/etc`` with every port replaced by ours (the launcher fills in @ASTDIR@)."""
        self.etc.mkdir(parents=True, exist_ok=True)
        for src in (self.home / "etc").glob("*.conf"):
            (self.etc / src.name).write_text(src.read_text())
        pjsip = self.etc / "pjsip.conf"
        text = _sub(
            pjsip.read_text(), r"^bind=127\.0\.0\.1:5060$", f"bind=127.0.0.1:{self.sip_port}", "SIP"
        )
        for ext, port in self.phones.items():
            text = _sub(
                text, rf"sip:{ext}@127\.0\.0\.1:510{ext[-1]}\b", f"sip:{ext}@127.0.0.1:{port}", ext
            )
        pjsip.write_text(text)
        manager = self.etc / "manager.conf"
        manager.write_text(
            _sub(manager.read_text(), r"^port = 5038$", f"port = {self.ami_port}", "AMI port")
        )
        rtp = self.etc / "rtp.conf"
        text = _sub(rtp.read_text(), r"^rtpstart=\d+$", f"rtpstart={self.rtp_start}", "rtpstart")
        rtp.write_text(_sub(text, r"^rtpend=\d+$", f"rtpend={self.rtp_start + 199}", "rtpend"))
        ext_conf = self.etc / "extensions.conf"
        text = ext_conf.read_text()
        for kind, default in CUSTOMERS.items():
            text = _sub(text, rf"(?<!\d){default}(?!\d)", str(self.customers[kind]), kind)
        ext_conf.write_text(text)

    def start(self, timeout_s: int = 60) -> int:
        launcher = self.home / "run-asterisk.sh"
        cmd = ["bash", str(launcher), "-b", "-t", str(timeout_s), str(self.root), str(self.etc)]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s + 30, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise PbxUnavailable(f"run-asterisk.sh did not return: {exc}") from exc
        out = done.stdout.strip().splitlines()
        if done.returncode != 0 or not out or not out[-1].isdigit():
            raise PbxUnavailable(
                f"the PBX did not start (exit {done.returncode}): {done.stderr.strip()[-1500:]}"
            )
        self.pid = int(out[-1])
        return self.pid

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop by PID (SIGTERM, SIGKILL after 15 s; ``sig=SIGKILL`` for a crash)."""
        if self.pid is not None:
            _stop_pid(self.pid, sig)
            self.pid = None
        # after a crash the pid file stays, and the dead PID may linger as a zombie (the
        # launcher detached it; nobody reaps it here): run-asterisk.sh would refuse to start
        pidfile = self.root / "var" / "run" / "asterisk" / "asterisk.pid"
        with contextlib.suppress(OSError, ValueError):
            if not alive(int(pidfile.read_text().strip())):
                pidfile.unlink()

    def restart(self, sig: int = signal.SIGTERM) -> int:
        self.stop(sig)
        return self.start()

    def cli(self, command: str) -> str:
        env = {**os.environ, "LD_LIBRARY_PATH": str(self.root / "lib")}
        done = subprocess.run(
            [*self.asterisk, "-rx", command],
            capture_output=True,
            text=True,
            env=env,
            timeout=20,
            check=False,
        )
        return done.stdout

    def active_calls(self) -> int:
        m = re.search(r"(\d+) active call", self.cli("core show channels count"))
        return int(m.group(1)) if m else 0

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# -- sipp ------------------------------------------------------------------------------


@dataclass
class Sipp:
    """sipp processes for one PBX (Debian's ``sip-tester``); each with its own ``-mp``
    block 10 ports wide.  ``stop_all`` kills what is still running, by PID."""

    pbx: Pbx
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    seq: int = 0

    @property
    def scenarios(self) -> Path:
        return self.pbx.home / "sipp"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        sipp = shutil.which("sipp")
        if sipp is None:
            raise PbxUnavailable("sipp (Debian package sip-tester) is not installed")
        self.seq += 1
        log = self.workdir / f"sipp-{self.seq:03d}-{name}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [sipp, *args, "-nostdin", "-i", "127.0.0.1", "-mp", str(PORTS.block(10))],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=fh,
            )
        self.procs.append(proc)
        return proc

    def phone(
        self, ext: str, scenario: str, *, delay_ms: int | None = None
    ) -> subprocess.Popen[bytes]:
        """Phone ``ext`` as a sipp UAS on its contact port (answers, busy, rings forever)."""
        args = ["-sf", str(self.scenarios / scenario), "-p", str(self.pbx.phones[ext])]
        if delay_ms is not None:
            args += ["-d", str(delay_ms)]
        return self._spawn(f"phone{ext}", args)

    def customer(self, kind: str, scenario: str) -> subprocess.Popen[bytes]:
        """An outbound customer (``answer``, ``busy``, ``noanswer``) on its trunk port."""
        args = ["-sf", str(self.scenarios / scenario), "-p", str(self.pbx.customers[kind])]
        return self._spawn(f"cust-{kind}", args)

    def call(
        self,
        did: str,
        callers: Sequence[str],
        *,
        talk_ms: int = 2000,
        rate_per_s: int | None = None,
        timeout_s: int = 90,
    ) -> subprocess.Popen[bytes]:
        """Inbound PSTN calls to ``did``, one per caller number (``caller.csv`` style,
        SEQUENTIAL), each talking ``talk_ms`` after the answer, then hanging up."""
        self.seq += 1
        csv = self.workdir / f"callers-{self.seq:03d}.csv"
        csv.write_text("SEQUENTIAL\n" + "".join(f"{c};\n" for c in callers))
        args = [
            f"127.0.0.1:{self.pbx.sip_port}",
            "-sf",
            str(self.scenarios / "uac.xml"),
            "-inf",
            str(csv),
            "-s",
            did,
            "-p",
            str(free_udp_port()),
            "-d",
            str(talk_ms),
            "-m",
            str(len(callers)),
            "-l",
            str(len(callers)),
            "-timeout",
            f"{timeout_s}s",
        ]
        if rate_per_s is not None:
            args += ["-r", str(rate_per_s), "-rp", "1000"]
        return self._spawn(f"call-{did}", args)

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            self.kill(proc)
        self.procs.clear()
