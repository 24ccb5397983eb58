"""A simulated power cut, in the spirit of LazyFS (not installable here): the hub runs
under ``strace``, which records every write, fsync and socket send with its data and
timing; a cut at any instant is then replayed as LazyFS would leave the disk: a file
keeps only the writes that an fsync of it finished covering before that instant.

``image_at(trace, cut, base)`` rebuilds the database files at ``cut`` from copies taken
before the hub started (``base``); the test opens them with sqlite3, which recovers the
WAL as it would after a reboot.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Call", "ensure_strace", "image_at", "read_trace", "strace_prefix"]

STRACE_CALLS = "pwrite64,write,writev,sendto,sendmsg,fsync,fdatasync,ftruncate"
# -yy -xx: ``<time> name(fd<path as \\xHH...>, "\\xHH...", ...) = ret <duration>``
_LINE = re.compile(
    r"^(?P<t>\d+\.\d+) (?P<name>\w+)\((?P<fd>\d+)<"
    r"(?P<path>(?:\\x[0-9a-f]{2})+|[\w-]+:\[[^\]]*\])"
    r"(?:<[^>]*>)?>(?P<rest>.*)\) = (?P<ret>-?\d+).*<(?P<dur>\d+\.\d+)>$"
)
_STR = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')
_TAIL_INTS = re.compile(r", (\d+), (\d+)$")


@dataclass(frozen=True, slots=True)
class Call:
    start: float
    end: float
    name: str
    path: str
    data: bytes = b""
    offset: int = 0  # pwrite64's offset, ftruncate's length
    thread: str = field(default="", compare=False)


def ensure_strace() -> str:
    """Path of strace, installed with apt when missing (retrying while apt is locked)."""
    found = shutil.which("strace")
    if found:
        return found
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for _ in range(30):
        done = subprocess.run(
            ["apt-get", "install", "-y", "strace"], env=env, capture_output=True, check=False
        )
        if done.returncode == 0:
            break
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        time.sleep(2)  # another apt-get may hold the lock
    found = shutil.which("strace")
    if not found:
        raise RuntimeError("strace is missing and apt-get could not install it")
    return found


def strace_prefix(out: Path) -> list[str]:
    """``strace`` arguments: every thread to its own file, full data as hex, times."""
    return [
        ensure_strace(),
        "-f",
        "-ff",
        "-ttt",
        "-T",
        "-yy",
        "-xx",
        "-s",
        "10000000",
        "-e",
        f"trace={STRACE_CALLS}",
        "-o",
        str(out),
    ]


def _hex(s: str) -> bytes:
    return bytes.fromhex(s.replace("\\x", ""))


def _path(raw: str) -> str:
    """A file path (printed as hex) or a socket (``TCP:[a->b]``, printed as it is)."""
    return _hex(raw).decode(errors="replace") if raw.startswith("\\x") else raw


def read_trace(prefix: Path) -> list[Call]:
    """Every successful traced call of every thread (``prefix.<tid>`` files)."""
    calls: list[Call] = []
    for f in sorted(prefix.parent.glob(prefix.name + ".*")):
        for line in f.read_text(errors="replace").splitlines():
            m = _LINE.match(line)
            if m is None or int(m["ret"]) < 0:
                continue
            start = float(m["t"])
            name, rest = m["name"], m["rest"]
            data = b"".join(_hex(s) for s in _STR.findall(rest))
            offset = 0
            if name == "pwrite64":
                tail = _TAIL_INTS.search(rest)
                assert tail is not None, line
                offset = int(tail[2])
            elif name == "ftruncate":
                offset = int(rest.rsplit(",", 1)[1])
            calls.append(
                Call(
                    start,
                    start + float(m["dur"]),
                    name,
                    _path(m["path"]),
                    data,
                    offset,
                    f.name,
                )
            )
    calls.sort(key=lambda c: c.start)
    return calls


def image_at(calls: list[Call], cut: float, base: dict[str, bytes]) -> dict[str, bytes]:
    """The files ``base`` names (path -> content before the run; b"" for a new one) as a
    power cut at ``cut`` leaves them: a write or truncate survives only when an fsync or
    fdatasync of the same file started after it finished and itself finished by ``cut``."""
    syncs: dict[str, list[Call]] = {}
    for c in calls:
        if c.name in ("fsync", "fdatasync") and c.end <= cut:
            syncs.setdefault(c.path, []).append(c)
    out = {p: bytearray(b) for p, b in base.items()}
    for c in calls:
        if c.path not in out or c.name not in ("pwrite64", "write", "ftruncate"):
            continue
        if not any(s.start >= c.end for s in syncs.get(c.path, ())):
            continue  # never synced before the cut: gone
        buf = out[c.path]
        if c.name == "ftruncate":
            del buf[c.offset :]
            continue
        assert c.name == "pwrite64", f"unexpected {c.name} on {c.path}"
        if len(buf) < c.offset:
            buf.extend(b"\0" * (c.offset - len(buf)))
        buf[c.offset : c.offset + len(c.data)] = c.data
    return {p: bytes(b) for p, b in out.items()}
