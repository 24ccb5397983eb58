"""The import's "Согласие на рассылку" column (SQLite and PostgreSQL): да/нет set the
consent of the row's emails (source "import", who ran it), an empty cell changes
nothing, a wrong value is a row error, an address that unsubscribed itself is kept."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from crm_core.db import Database
from crm_core.imports.read import read_clients
from crm_core.models import EmailConsent, EmailConsentEvent
from crm_core.services import consent
from crm_core.services.imports import import_clients
from crm_core.services.users import create_user


async def test_consent_column(db: Database, tmp_path: Path) -> None:
    async with db.transaction() as s:
        user, _ = await create_user(s, "boss@example.ru", "admin", name="Босс")
        await consent.suppress(s, "gone@lutik.ru", "unsubscribed", "one_click", 4)
    path = tmp_path / "c.csv"
    path.write_text(
        "Наименование;E-mail;Согласие на рассылку\n"
        "Ромашка;info@romashka.ru, sales@romashka.ru;да\n"
        "Лютик;gone@lutik.ru;Да\n"  # unsubscribed itself: kept
        "Василёк;vasilek@example.ru;нет\n"
        "Ландыш;landysh@example.ru;\n"  # empty: nothing recorded
        "Ирис;iris@example.ru;может быть\n",  # not yes or no: a row error
        "utf-8",
    )
    report = await import_clients(db, read_clients(path), user_id=user.id)
    out = report.as_dict()
    assert out["mapping"]["Согласие на рассылку"] == "email_consent"
    assert [(e["row"], e["column"]) for e in out["errors"]] == [(6, "Согласие на рассылку")]
    assert out["errors"][0]["error_ru"] == "согласие: да или нет"
    assert out["consent"] == {"changed": 3, "unchanged": 0, "kept": 1}
    assert [(n["row"], n["value"]) for n in out["notes"]] == [(3, "gone@lutik.ru")]
    async with db.sessions() as s:
        states = dict((await s.execute(select(EmailConsent.email, EmailConsent.state))).all())
        events = list(
            await s.scalars(select(EmailConsentEvent).where(EmailConsentEvent.source == "import"))
        )
    assert states == {
        "info@romashka.ru": "granted",
        "sales@romashka.ru": "granted",
        "gone@lutik.ru": "unsubscribed",
        "vasilek@example.ru": "withdrawn",
    }
    assert {e.user_id for e in events} == {user.id} and len(events) == 3
    # the same file again: nothing new
    report = await import_clients(db, read_clients(path), user_id=user.id)
    assert report.as_dict()["consent"] == {"changed": 0, "unchanged": 3, "kept": 1}
    async with db.sessions() as s:
        assert len(list(await s.scalars(select(EmailConsentEvent)))) == 4
