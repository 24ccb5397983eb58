"""The live PBX suite: a real Asterisk 22 from ``../shared/pbx`` on loopback (free ports),
sipp phones 101-104 and outbound customers, and crmhub as a real ``crmhub serve``.

Skipped with a clear message where ``../shared/pbx`` is absent or the PBX cannot be
installed/started; under CI (``CI`` set) a PBX that cannot start fails the tests.
One PBX per pytest session; one shared crmhub for the plain scenarios; a fresh crmhub
(a copy of the same users' database) for the scenarios that start, kill or reconfigure it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.support.live_crmhub import Crmhub, User
from tests.support.live_pbx import PBX_HOME, Pbx, PbxUnavailable, Sipp, ensure_packages

PHONE_RING_MS = 1000  # 101 and 102 answer after ringing this long


@dataclass
class Lab:
    pbx: Pbx
    sipp: Sipp
    workdir: Path
    hubs: list[Crmhub] = field(default_factory=list)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"live PBX tests: the PBX is required in CI but {reason}")
    pytest.skip(f"live PBX tests skipped: {reason}")


@pytest.fixture(scope="package")
def lab() -> Iterator[Lab]:
    """The PBX, unpacked and started once for this package's tests, with phones 101 and
    102 (answer), 103 (rings forever), 104 (busy) and the outbound customers (answer,
    busy, no answer)."""
    if not (PBX_HOME / "run-asterisk.sh").is_file():
        pytest.skip(
            f"live PBX tests skipped: no PBX at {PBX_HOME} (../shared/pbx with the Asterisk "
            "tarball and run-asterisk.sh; set CRMHUB_TEST_PBX to use another place)"
        )
    try:
        ensure_packages()
        pbx = Pbx.unpack()
    except PbxUnavailable as exc:
        _unavailable(str(exc))
    lab = Lab(pbx=pbx, sipp=Sipp(pbx, pbx.root / "work"), workdir=pbx.root / "work")
    lab.workdir.mkdir()
    try:
        try:
            pbx.start()
        except PbxUnavailable as exc:
            _unavailable(str(exc))
        lab.sipp.phone("101", "uas_answer.xml", delay_ms=PHONE_RING_MS)
        lab.sipp.phone("102", "uas_answer.xml", delay_ms=PHONE_RING_MS)
        lab.sipp.phone("103", "uas_noanswer.xml")
        lab.sipp.phone("104", "uas_busy.xml")
        lab.sipp.customer("answer", "uas_cust.xml")
        lab.sipp.customer("busy", "uas_busy.xml")
        lab.sipp.customer("noanswer", "uas_noanswer.xml")
        yield lab
    finally:
        for hub in lab.hubs:
            hub.stop()
        lab.sipp.stop_all()
        pbx.stop()
        if not os.environ.get("CRMHUB_TEST_KEEP"):
            shutil.rmtree(pbx.root, ignore_errors=True)


@dataclass
class Roster:
    """The users (made with ``crmhub users add``): an admin and the operators 101-104."""

    users: dict[str, User]
    db: Path | None = None  # SQLite: the database file every SQLite hub starts from a copy of

    def rules(self) -> str:
        """Calls go round robin between the users of 101 and 102."""
        a, b = self.users["101"].id, self.users["102"].id
        return (
            "version: 1\nrules:\n  - id: calls-round-robin\n    when: {channel: call}\n"
            f"    assign: {{users: [{a}, {b}], strategy: round_robin}}\n"
        )


def add_users(maker: Crmhub) -> dict[str, User]:
    users = {"admin": maker.add_user("boss@example.ru", "admin")}  # creates the schema
    exts = ("101", "102", "103", "104")
    with ThreadPoolExecutor(len(exts)) as pool:  # the CLI takes seconds to start here
        made = pool.map(lambda e: maker.add_user(f"op{e}@example.ru", "manager", extension=e), exts)
        users.update(zip(exts, made, strict=True))
    return users


@pytest.fixture(scope="package")
def roster(lab: Lab) -> Roster:
    root = lab.workdir / "roster"
    db = root / "users.db"
    return Roster(users=add_users(Crmhub(root, f"sqlite+aiosqlite:///{db}", lab.pbx)), db=db)


HubFactory = Callable[..., Crmhub]


@pytest.fixture(scope="package")
def make_hub(lab: Lab, roster: Roster) -> HubFactory:
    """A crmhub on its own copy of the roster's database (not started)."""
    count = [0]

    def make(name: str = "hub", **asterisk: Any) -> Crmhub:
        count[0] += 1
        root = lab.workdir / f"{name}-{count[0]}"
        root.mkdir()
        db = root / "crmhub.db"
        assert roster.db is not None
        shutil.copyfile(roster.db, db)
        hub = Crmhub(
            root, f"sqlite+aiosqlite:///{db}", lab.pbx, rules_yaml=roster.rules(), asterisk=asterisk
        )
        hub.users = dict(roster.users)
        lab.hubs.append(hub)
        return hub

    return make


@pytest.fixture(scope="package")
def hub(make_hub: HubFactory) -> Crmhub:
    """The shared crmhub, running, its AMI link up."""
    hub = make_hub("shared")
    hub.start()
    return hub


@pytest.fixture
def fresh_hub(make_hub: HubFactory) -> Iterator[HubFactory]:
    """Make crmhubs of this test's own (stopped when the test ends)."""
    made: list[Crmhub] = []

    def make(name: str = "hub", **asterisk: Any) -> Crmhub:
        made.append(make_hub(name, **asterisk))
        return made[-1]

    yield make
    for h in made:
        h.stop()


def _pg_admin(url: str, sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="package")
def pg_hub(lab: Lab, pg_url: str) -> Iterator[Crmhub]:
    """A second shared crmhub, on PostgreSQL (a database of its own on the test server)."""
    base, _, name = pg_url.rpartition("/")
    name = f"{name}_live"
    _pg_admin(pg_url, f'CREATE DATABASE "{name}"')
    try:
        hub = Crmhub(lab.workdir / "pg", f"{base}/{name}", lab.pbx)
        lab.hubs.append(hub)
        roster = Roster(users=add_users(hub))
        hub.users = dict(roster.users)
        hub.rules_yaml = roster.rules()
        hub.write_config()
        hub.start()
        yield hub
        hub.stop()
    finally:
        _pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
