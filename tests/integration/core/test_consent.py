"""Consent storage on SQLite and PostgreSQL: suppress is idempotent, set_consent keeps
an address's own refusal, suppressed() answers 20,000 addresses in a few queries, the
signing secret is made once and kept."""

from __future__ import annotations

import math
import time

import pytest
from sqlalchemy import event, func, select

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.models import EmailConsent, EmailConsentEvent
from crm_core.services import consent as svc
from crm_core.services.common import Invalid
from crm_core.services.users import create_user


async def _events(db: Database, email: str) -> list[EmailConsentEvent]:
    async with db.sessions() as s:
        return list(
            await s.scalars(
                select(EmailConsentEvent)
                .where(EmailConsentEvent.email == email)
                .order_by(EmailConsentEvent.id)
            )
        )


async def test_suppress_is_idempotent(db: Database) -> None:
    async with db.transaction() as s:
        assert (
            await svc.suppress(s, " Ivan@Example.RU", "unsubscribed", "one_click", 5) == "changed"
        )
    async with db.transaction() as s:
        assert (
            await svc.suppress(s, "ivan@example.ru", "unsubscribed", "one_click", 5) == "unchanged"
        )
    events = await _events(db, "ivan@example.ru")
    assert [(e.state, e.previous_state, e.source, e.campaign_id) for e in events] == [
        ("unsubscribed", None, "one_click", 5)
    ]
    async with db.transaction() as s:
        assert await svc.suppress(s, "ivan@example.ru", "complained", "arf") == "changed"
    events = await _events(db, "ivan@example.ru")
    assert [(e.state, e.previous_state) for e in events][-1] == ("complained", "unsubscribed")
    async with db.sessions() as s:
        assert await svc.suppressed(s, ["IVAN@example.ru", "olga@example.ru"]) == {
            "ivan@example.ru"
        }


async def test_bad_input_changes_nothing(db: Database) -> None:
    async with db.transaction() as s:
        with pytest.raises(Invalid) as err:
            await svc.suppress(s, "not an address", "unsubscribed", "x")
        assert err.value.field == "email"
        with pytest.raises(Invalid) as err:
            await svc.suppress(s, "a@example.ru", "spam", "x")
        assert err.value.field == "reason"
        with pytest.raises(Invalid) as err:
            await svc.set_consent(s, "a@example.ru", "maybe", "manager", None)
        assert err.value.field == "state"
    async with db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(EmailConsent)) == 0


async def test_set_consent_keeps_an_own_refusal(db: Database) -> None:
    async with db.transaction() as s:
        user, _ = await create_user(s, "m@example.ru", "manager", name="M")
    who = Actor(user.id, "manager")
    async with db.transaction() as s:
        assert await svc.set_consent(s, "a@example.ru", "granted", "import", who) == "changed"
        assert await svc.set_consent(s, "a@example.ru", "granted", "import", who) == "unchanged"
        assert await svc.set_consent(s, "a@example.ru", "withdrawn", "manager", who) == "changed"
        await svc.suppress(s, "b@example.ru", "unsubscribed", "one_click")
        # an import never resubscribes; a manager only with a note
        assert await svc.set_consent(s, "b@example.ru", "granted", "import", who) == "kept"
        with pytest.raises(Invalid) as err:
            await svc.set_consent(s, "b@example.ru", "granted", "manager", who)
        assert err.value.field == "note"
    async with db.sessions() as s:
        assert await svc.suppressed(s, ["a@example.ru", "b@example.ru"]) == {
            "a@example.ru",
            "b@example.ru",
        }
    async with db.transaction() as s:
        res = await svc.set_consent(
            s, "b@example.ru", "granted", "manager", who, note="asked again by phone"
        )
        assert res == "changed"
    async with db.sessions() as s:
        assert await svc.suppressed(s, ["a@example.ru", "b@example.ru"]) == {"a@example.ru"}
        history = await svc.consent_history(s, "b@example.ru")
    assert [(h["state"], h["source"], h["user_name"], h["note"]) for h in history] == [
        ("granted", "manager", "M", "asked again by phone"),
        ("unsubscribed", "one_click", None, None),
    ]


async def test_suppressed_20000_addresses(db: Database) -> None:
    emails = [f"user{i}@example{i % 50}.ru" for i in range(20_000)]
    states = list(svc.CONSENT_STATES)
    async with db.transaction() as s:
        await s.run_sync(
            lambda ss: ss.bulk_insert_mappings(
                EmailConsent,  # type: ignore[arg-type]
                [
                    {"email": e, "state": states[i % len(states)], "source": "test"}
                    for i, e in enumerate(emails)
                ],
            )
        )
    queries: list[str] = []

    def count_query(*args: object) -> None:
        queries.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count_query)
    try:
        async with db.sessions() as s:
            started = time.perf_counter()
            got = await svc.suppressed(s, [e.upper() for e in emails] + ["none@example.ru"])
            took = time.perf_counter() - started
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count_query)
    expected = {e for i, e in enumerate(emails) if states[i % len(states)] != "granted"}
    assert got == expected
    # one query on PostgreSQL (an array), one per batch on SQLite
    batches = 1 if db.is_postgres else math.ceil(20_001 / svc.SUPPRESSED_BATCH)
    assert len([q for q in queries if "email_consent" in q]) == batches
    print(f"suppressed(): 20,001 addresses in {took * 1000:.0f} ms ({db.dialect})")
    assert took < 5


async def test_signing_secret_made_once(db: Database) -> None:
    async with db.transaction() as s:
        first = await svc.signing_secret(s)
    async with db.transaction() as s:
        assert await svc.signing_secret(s) == first
        assert await svc.signing_secret(s, "configured-secret-1234") == "configured-secret-1234"
    assert len(first) >= 32
