from sqlalchemy import inspect

from crm_core.db import Database, migrate


async def test_migrations_create_every_table_and_are_idempotent(db: Database) -> None:
    await migrate(db)  # a second run changes nothing
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"clients", "leads", "deals", "inbox_events", "outbox", "interactions"} <= tables
    assert "alembic_version" in tables
