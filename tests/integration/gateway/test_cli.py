"""The administrator's command line: users, forms, ingest, inbox list and replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict], str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return code, rows, err


def test_users_forms_ingest_and_inbox(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMHUB_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CRMHUB_ROUTING_RULES_PATH", "")
    monkeypatch.setenv("CRMHUB_ATTACHMENTS_DIR", str(tmp_path / "att"))

    code, rows, _ = run(
        capsys,
        "users",
        "add",
        "Petrov@Example.ru",
        "--role",
        "manager",
        "--name",
        "Пётр",
        "--extension",
        "101",
        "--team",
        "sales",
    )
    assert code == 0 and rows[0]["email"] == "petrov@example.ru" and rows[0]["token"]
    code, _, err = run(capsys, "users", "add", "petrov@example.ru", "--role", "manager")
    assert code == 2 and "petrov@example.ru" in err

    code, rows, _ = run(capsys, "forms", "add", "Сайт")
    assert code == 0 and rows[0]["key"] and rows[0]["secret"]

    tilda = str(FIXTURES / "forms" / "tilda_02_lead.urlencoded.txt")
    code, rows, _ = run(capsys, "ingest", "form", tilda, "--dry-run")
    assert code == 0 and rows[0]["identities"][0] == "phone:+79165551234"
    assert rows[0]["classification"] == "regular"

    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2", encoding="utf-8")
    code, _, err = run(capsys, "ingest", "form", str(junk), "--dry-run", "--content-type", "json")
    assert code == 2 and err.count("\n") == 1

    code, rows, err = run(capsys, "ingest", "form", tilda)
    assert code == 0 and rows[0]["result"]["status"] == "processed"
    assert rows[0]["result"]["lead_id"]
    assert len(rows) == 1, "stdout carries the result only; the pipeline's log goes to stderr"
    assert "event_processed" in err

    # A JSON body is recognised without --content-type (Contact Form 7 webhook).
    cf7 = str(FIXTURES / "forms" / "cf7_to_webhook.json")
    code, rows, _ = run(capsys, "ingest", "form", cf7, "--dry-run")
    assert code == 0 and rows[0]["meta"]["platform"] == "cf7"

    # A Telegram docs example that the library cannot parse is stored as failed.
    tg = str(FIXTURES / "telegram" / "01_docs_message_text_start.json")
    code, _, err = run(capsys, "ingest", "telegram", tg, "--dry-run")
    assert code == 2 and "cannot understand" in err

    code, rows, _ = run(capsys, "inbox", "list")
    assert code == 0 and [r["status"] for r in rows] == ["processed"]
    code, rows, _ = run(capsys, "inbox", "list", "--failed")
    assert code == 0 and rows == []
    code, rows, _ = run(capsys, "inbox", "replay", str((rows and rows[0]["id"]) or 1))
    assert code == 0 and rows[0]["status"] == "processed"
    code, _, err = run(capsys, "inbox", "replay", "999")
    assert code == 2 and "999" in err
