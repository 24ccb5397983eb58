"""``crmhub import clients`` / ``crmhub import undo``: the last stdout line is the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "import"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(list(args))
    out, _ = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    monkeypatch.setenv("CRMHUB_DATABASE_URL", db_url)
    monkeypatch.setenv("CRMHUB_ROUTING_RULES_PATH", "")
    monkeypatch.setenv("CRMHUB_ATTACHMENTS_DIR", str(tmp_path / "att"))
    return tmp_path


def test_import_dry_run_import_reimport_undo(capsys: pytest.CaptureFixture[str], env: Path) -> None:
    for email in ("petrov@example.ru", "ivanova@example.ru"):
        assert main(["users", "add", email, "--role", "manager"]) == 0
    capsys.readouterr()
    xlsx = str(SAMPLES / "clients_simple.xlsx")
    code, dry = run(capsys, "import", "clients", xlsx, "--dry-run")
    assert code == 0 and dry["import_id"] is None
    assert set(dry) >= {
        "import_id",
        "rows",
        "created",
        "updated",
        "unchanged",
        "skipped",
        "errors",
        "mapping",
    }
    assert (dry["rows"], dry["created"], dry["updated"]) == (6, 4, 1)
    assert dry["errors"][0]["row"] == 7 and dry["errors"][0]["column"] == "ИНН"
    assert dry["errors"][0]["value"] == "7701234567" and dry["errors"][0]["error_ru"]
    assert dry["mapping"]["Телефон"] == "phones"

    code, first = run(capsys, "import", "clients", xlsx, "--owner", "ivanova@example.ru")
    assert code == 0 and first["import_id"] and first["created"] == 4
    code, again = run(capsys, "import", "clients", xlsx)
    assert code == 0 and (again["created"], again["updated"], again["unchanged"]) == (0, 0, 5)

    code, undone = run(capsys, "import", "undo", str(first["import_id"]))
    assert code == 0 and undone["removed_clients"] == 4
    code, err = run(capsys, "import", "undo", str(first["import_id"]))
    assert (
        code == 2
        and err["field"] == "import_id"
        and err["error_ru"] == "Импорт " + str(first["import_id"]) + " уже не в силе (undone)"
    )
    code, back = run(capsys, "import", "clients", xlsx)
    assert code == 0 and back["created"] == 4  # after undo the clients come back


def test_import_errors_are_json_and_bilingual(
    capsys: pytest.CaptureFixture[str], env: Path
) -> None:
    junk = env / "junk.xlsx"
    junk.write_bytes(b"\x00\x01\x02binary junk\x00")
    code, err = run(capsys, "import", "clients", str(junk))
    assert code == 2 and "not a spreadsheet" in err["error"] and "не таблица" in err["error_ru"]
    code, err = run(
        capsys, "import", "clients", str(SAMPLES / "clients_simple.xlsx"), "--sheet", "X"
    )
    assert code == 2 and err["field"] == "sheet" and "Клиенты" in err["error"]
    bomb = env / "map.yaml"
    bomb.write_text("a: &a [x, x]\ncolumns: *a\n", "utf-8")
    code, err = run(
        capsys, "import", "clients", str(SAMPLES / "clients_utf8.csv"), "--mapping", str(bomb)
    )
    assert code == 2 and err["field"] == "mapping" and "aliases" in err["error"]
    code, err = run(
        capsys, "import", "clients", str(SAMPLES / "clients_utf8.csv"), "--owner", "x@y.ru"
    )
    assert (
        code == 2
        and err["field"] == "owner"
        and err["error_ru"] == "Нет сотрудника с почтой x@y.ru"
    )
