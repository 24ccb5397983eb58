"""Alembic environment: the same migrations serve SQLite and PostgreSQL.

Run through ``crm_core.db.migrate`` (``crmhub migrate``), which passes a live connection.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from crm_core.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite ALTER TABLE support
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # plain `alembic` command line with a sync URL, e.g. for autogenerate
    url = config.get_main_option("sqlalchemy.url") or "sqlite:///./var/crmhub.db"
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
