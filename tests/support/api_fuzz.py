"""Schemathesis against a real ``crmhub serve`` process (issue 10 item 18).

``served_app`` starts ``crmhub serve`` on a free loopback port with a settings file in a
temporary directory, waits for ``/healthz`` and stops the process (by its PID) at the
end; its log goes to ``serve.log`` so a 5xx comes with its traceback.
``seed`` loads the demo data (clients, deals, tasks, a timeline) and adds an admin and
a manager with tokens.  ``fuzz_api`` loads ``/api/v1/openapi.json`` from the server
and runs every operation through Hypothesis with schemathesis' strategies (positive and
negative data), checking ``not_a_server_error`` and ``response_schema_conformance``;
it returns every distinct failure instead of stopping at the first one.

Bounded and reproducible: ``max_examples`` per operation and mode, ``derandomize``
(the examples are a function of the test), no shrinking, no deadline, no example
database.  Run by hand: ``python -m tests.support.api_fuzz sqlite|PG_URL [N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from crm_core.db import Database, migrate
from crm_core.demo import load_demo
from crm_core.services.users import create_user

__all__ = ["ApiFailure", "FuzzReport", "fuzz_api", "seed", "served_app"]

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [not_a_server_error, response_schema_conformance]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _crmhub() -> list[str]:
    exe = Path(sys.executable).with_name("crmhub")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]


@contextlib.contextmanager
def served_app(db_url: str, tmp: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, log file) of a running ``crmhub serve``; stopped on exit."""
    port = _free_port()
    rules = tmp / "routing.yaml"
    shutil.copy(ROOT / "config" / "routing.yaml", rules)
    config = tmp / "crmhub.toml"
    config.write_text(
        f'database_url = "{db_url}"\n'
        f'routing_rules_path = "{rules}"\n'
        f'attachments_dir = "{tmp / "attachments"}"\n'
        'log_format = "json"\n'
        "poll_interval = 0.2\n"
        "sla_poll_seconds = 0\n"
        "run_workers = false\n"  # the outbox is not sent: nothing leaves the machine
        # a relay is configured (POST /emails answers 202, not "not configured" 503)
        f'[smtp]\nhost = "127.0.0.1"\nport = {_free_port()}\ntls = "none"\n'
        'from_address = "crm@example.ru"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *_crmhub(),
                "--config",
                str(config),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"crmhub serve exited {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"crmhub serve did not answer in 60 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield base, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def seed(db_url: str) -> dict[str, str]:
    """Demo data plus an admin and a manager; returns {"admin": token, "manager": token}."""
    db = Database(db_url)
    try:
        await migrate(db)
        await load_demo(db)
        tokens = {}
        async with db.transaction() as s:
            for role in ("admin", "manager"):
                _, tokens[role] = await create_user(
                    s, f"fuzz-{role}@example.ru", role, name=f"Fuzz {role}", team="sales"
                )
        return tokens
    finally:
        await db.dispose()


@dataclass(frozen=True)
class ApiFailure:
    user: str
    operation: str
    status: int | None
    message: str
    curl: str

    def __str__(self) -> str:
        return f"[{self.user}] {self.operation} -> {self.status}: {self.message}\n  {self.curl}"


@dataclass
class FuzzReport:
    failures: list[ApiFailure] = field(default_factory=list)
    requests: int = 0
    operations: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[:6])[:600]


def fuzz_api(
    base_url: str,
    tokens: dict[str, str],
    *,
    max_examples: int = 10,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
) -> FuzzReport:
    """Every operation of the served document, for every user in ``tokens``."""
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    report = FuzzReport()
    seen: set[tuple[str, str, str]] = set()
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    report.operations = len(operations)
    for user, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"}
        for op in operations:
            for mode in modes:
                _fuzz_one(op, mode, user, headers, base_url, session, max_examples, report, seen)
    report.seconds = time.monotonic() - started
    return report


def _fuzz_one(
    op: Any,
    mode: GenerationMode,
    user: str,
    headers: dict[str, str],
    base_url: str,
    session: requests.Session,
    max_examples: int,
    report: FuzzReport,
    seen: set[tuple[str, str, str]],
) -> None:
    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        merged = {**(case.headers or {}), **headers}
        try:
            response = case.call(base_url=base_url, session=session, headers=merged, timeout=30)
        except requests.RequestException as exc:
            key = (user, op.label, type(exc).__name__)
            if key not in seen:
                seen.add(key)
                report.failures.append(ApiFailure(user, op.label, None, _first_line(exc), ""))
            return
        report.requests += 1
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=merged)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis: FailureGroup
            message = _first_line(exc)
            key = (user, op.label, f"{response.status_code}:{message[:80]}")
            if key in seen:
                return
            seen.add(key)
            curl = case.as_curl_command(headers=merged)
            report.failures.append(ApiFailure(user, op.label, response.status_code, message, curl))

    try:
        run()
    except Unsatisfiable:  # no input of this mode exists (e.g. no invalid one for an
        pass  # operation whose only input is an id in its path): nothing to send


if __name__ == "__main__":  # pragma: no cover - a developer's tool
    import tempfile

    target = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite+aiosqlite:///{d}/fuzz.db" if target == "sqlite" else target
        toks = asyncio.run(seed(url))
        with served_app(url, Path(d)) as (base, logfile):
            rep = fuzz_api(base, toks, max_examples=n)
        print(f"{rep.operations} operations, {rep.requests} requests, {rep.seconds:.1f} s")
        print("statuses:", dict(sorted(rep.statuses.items())))
        for f in rep.failures:
            print(f)
        if any(f.status and f.status >= 500 for f in rep.failures):
            print("---- server log (errors) ----")
            for line in logfile.read_text().splitlines():
                if '"error"' in line or "Traceback" in line or "Error" in line:
                    print(line[:2000])
