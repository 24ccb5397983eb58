"""``crmhub export clients``: filters, ``--as``, refused input (JSON on the last line)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from crm_core.db import Database, migrate
from gateway.cli import main
from tests.integration.exports.seed import seed_base


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(list(args))
    out, _ = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.setenv("CRMHUB_DATABASE_URL", db_url)
    monkeypatch.setenv("CRMHUB_ROUTING_RULES_PATH", "")

    async def seed() -> None:
        db = Database(db_url)
        try:
            await migrate(db)
            await seed_base(db)
        finally:
            await db.dispose()

    asyncio.run(seed())
    return tmp_path


def _names(path: Path) -> list[str]:
    rows = list(csv.reader(io.StringIO(path.read_bytes()[3:].decode()), delimiter=";"))
    return [r[0] for r in rows[1:] if not r[rows[0].index("Контактное лицо")]]


def test_export_filters_and_as_user(capsys: pytest.CaptureFixture[str], env: Path) -> None:
    out = env / "all.csv"
    code, res = run(capsys, "export", "clients", "--format", "csv", "-o", str(out))
    assert code == 0 and res["file"] == str(out) and res["clients"] == 5
    assert res["rows"] == 5 + 3  # three contact persons, one row each
    code, res = run(
        capsys, "export", "clients", "--format", "csv", "-o", str(out), "--filter", "kind=person"
    )
    assert code == 0 and _names(out) == ["Сидоров Пётр Ильич"]
    code, res = run(
        capsys,
        "export",
        "clients",
        "--format",
        "csv",
        "-o",
        str(out),
        "--as",
        "petrov@example.ru",
    )
    assert code == 0 and set(_names(out)) == {"ООО Ромашка", "Лютик"}
    xlsx = env / "x.xlsx"
    code, res = run(capsys, "export", "clients", "-o", str(xlsx), "--filter", "q=Ромашка")
    assert code == 0 and res["format"] == "xlsx" and res["clients"] == 1 and xlsx.exists()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--filter", "status"], "filter"),
        (["--filter", "nope=1"], "nope"),
        (["--filter", "phone=12"], "phone"),
        (["--segment", "777"], "segment"),
        (["--as", "nobody@example.ru"], "as"),
    ],
)
def test_export_refusals_are_json_and_bilingual(
    capsys: pytest.CaptureFixture[str], env: Path, args: list[str], field: str
) -> None:
    out = env / "no.csv"
    code, err = run(capsys, "export", "clients", "--format", "csv", "-o", str(out), *args)
    assert code == 2 and err["field"] == field and err["error"] and err["error_ru"]
    assert not out.exists() and not list(env.glob("*.part"))
