"""scale: indexes for reports, lists, timelines and owner loads; name search; monthly
interaction counts per user (kept by triggers) for the manager-activity report

Adds indexes only (no row is rewritten).  On PostgreSQL they are built
``CONCURRENTLY`` in an autocommit block, so a live base keeps taking writes; the name
search uses ``pg_trgm`` GIN indexes.  On SQLite the name search is an FTS5 trigram
index over ``clients.name`` and ``contact_persons.name`` kept in step by triggers.

Revision ID: 0004_scale
Revises: 0003_live_tickets
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

log = logging.getLogger("alembic.runtime.migration")

revision: str = "0004_scale"
down_revision: str | None = "0003_live_tickets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, table, columns, partial WHERE or None); the same list is declared on the models.
INDEXES: tuple[tuple[str, str, list[str], str | None], ...] = (
    ("ix_interactions_user_activity", "interactions",
     ["user_id", "occurred_at", "channel", "direction", "outcome"], None),
    ("ix_leads_report", "leads", ["created_at", "source", "status", "loss_reason"], None),
    ("ix_leads_owner_created", "leads", ["owner_id", "status", "created_at"], None),
    ("ix_leads_status_owner", "leads", ["status", "owner_id"], None),
    ("ix_tasks_status_assignee", "tasks", ["status", "assignee_id"], None),
    ("ix_tasks_due_order", "tasks", ["due_at", "id"], None),
    ("ix_tasks_assignee_due_order", "tasks", ["assignee_id", "due_at", "id"], None),
    ("ix_tasks_assignee_created", "tasks", ["assignee_id", "status", "created_at"], None),
    ("ix_deals_owner_created", "deals", ["owner_id", "created_at"], None),
    ("ix_deal_stage_changes_path", "deal_stage_changes",
     ["deal_id", "to_stage", "from_stage", "at", "id"], None),
)  # fmt: skip

FTS = (("clients_fts", "clients"), ("contact_persons_fts", "contact_persons"))


ROLLUP_KEY = "user_id, month, channel, direction, outcome"
_SQLITE_ADD = (
    "INSERT INTO interaction_monthly (user_id, month, channel, direction, outcome, n) "
    "SELECT NEW.user_id, strftime('%Y-%m', NEW.occurred_at), NEW.channel, NEW.direction, "
    "coalesce(NEW.outcome, ''), 1 WHERE NEW.user_id IS NOT NULL "
    f"ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET n = n + 1;"
)
_SQLITE_SUB = (
    "UPDATE interaction_monthly SET n = n - 1 WHERE OLD.user_id IS NOT NULL "
    "AND user_id = OLD.user_id AND month = strftime('%Y-%m', OLD.occurred_at) "
    "AND channel = OLD.channel AND direction = OLD.direction "
    "AND outcome = coalesce(OLD.outcome, '');"
)
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION interaction_monthly_apply() RETURNS trigger AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.user_id IS NOT NULL THEN
    UPDATE interaction_monthly SET n = n - 1
     WHERE user_id = OLD.user_id
       AND month = to_char(OLD.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM')
       AND channel = OLD.channel AND direction = OLD.direction
       AND outcome = coalesce(OLD.outcome, '');
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.user_id IS NOT NULL THEN
    INSERT INTO interaction_monthly ({ROLLUP_KEY}, n)
    VALUES (NEW.user_id, to_char(NEW.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM'),
            NEW.channel, NEW.direction, coalesce(NEW.outcome, ''), 1)
    ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET n = interaction_monthly.n + 1;
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""
_TRACKED = "user_id, occurred_at, channel, direction, outcome"


def _rollup(postgres: bool) -> None:
    """``interaction_monthly`` and the triggers that keep it, then one GROUP BY to fill it
    from the interactions already there (in this transaction: on PostgreSQL the
    trigger's lock holds concurrent writers until the backfill commits)."""
    op.create_table(
        "interaction_monthly",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "user_id", "month", "channel", "direction", "outcome", name="pk_interaction_monthly"
        ),
    )
    if postgres:
        op.execute(_PG_FUNCTION)
        op.execute(
            f"CREATE TRIGGER interaction_monthly_trg AFTER INSERT OR DELETE OR UPDATE OF "
            f"{_TRACKED} ON interactions FOR EACH ROW EXECUTE FUNCTION interaction_monthly_apply()"
        )
        month = "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM')"
    else:
        on = "ON interactions BEGIN"
        op.execute(f"CREATE TRIGGER interaction_monthly_ai AFTER INSERT {on} {_SQLITE_ADD} END")
        op.execute(f"CREATE TRIGGER interaction_monthly_ad AFTER DELETE {on} {_SQLITE_SUB} END")
        op.execute(
            f"CREATE TRIGGER interaction_monthly_au AFTER UPDATE OF {_TRACKED} ON interactions "
            f"BEGIN {_SQLITE_SUB} {_SQLITE_ADD} END"
        )
        month = "strftime('%Y-%m', occurred_at)"
    op.execute(
        f"INSERT INTO interaction_monthly ({ROLLUP_KEY}, n) "
        f"SELECT user_id, {month}, channel, direction, coalesce(outcome, ''), count(*) "
        f"FROM interactions WHERE user_id IS NOT NULL "
        f"GROUP BY user_id, {month}, channel, direction, coalesce(outcome, '')"
    )


def _sqlite_fts() -> None:
    for fts, table in FTS:
        op.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5("
            f"name, content='{table}', content_rowid='id', tokenize='trigram')"
        )
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS {fts}_ai AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {fts}(rowid, name) VALUES (new.id, new.name); END"
        )
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS {fts}_ad AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, name) VALUES ('delete', old.id, old.name); END"
        )
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS {fts}_au AFTER UPDATE OF name ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, name) VALUES ('delete', old.id, old.name); "
            f"INSERT INTO {fts}(rowid, name) VALUES (new.id, new.name); END"
        )
        op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")


def _pg_online(bind: sa.Connection) -> None:
    """Build the indexes CONCURRENTLY, outside any transaction.

    ``crm_core.db.migrate`` hands Alembic a connection that is already in a
    transaction (it holds the migrators' advisory lock), so Alembic's own
    ``autocommit_block`` cannot be used: commit what came before, switch the
    connection to autocommit for the builds, and switch back (the version row is
    then written in a new transaction, committed by ``migrate``).
    """
    level = bind.default_isolation_level or "READ COMMITTED"
    if bind.in_transaction():
        bind.commit()
    bind.execution_options(isolation_level="AUTOCOMMIT")
    try:
        try:
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            trigram = True
        except sa.exc.DBAPIError as exc:  # not allowed to: name search scans instead
            log.warning("pg_trgm unavailable, the name search will scan: %s", exc.orig)
            trigram = False
        for name, table, cols, where in INDEXES:
            # A failed concurrent build leaves an INVALID index behind: drop it first.
            invalid = bind.exec_driver_sql(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                f"WHERE c.relname = '{name}' AND NOT i.indisvalid"
            ).first()
            if invalid:
                bind.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            part = f" WHERE {where}" if where else ""
            bind.exec_driver_sql(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} "
                f"ON {table} ({', '.join(cols)}){part}"
            )
        for table in ("clients", "contact_persons") if trigram else ():
            bind.exec_driver_sql(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_{table}_name_trgm "
                f"ON {table} USING gin (name gin_trgm_ops)"
            )
    finally:
        if bind.in_transaction():
            bind.commit()  # SQLAlchemy's (empty) autobegun transaction under AUTOCOMMIT
        bind.execution_options(isolation_level=level)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _rollup(postgres=True)
        _pg_online(bind)
        return
    _rollup(postgres=False)
    for name, table, cols, where in INDEXES:
        op.create_index(
            name, table, cols, sqlite_where=sa.text(where) if where else None, if_not_exists=True
        )
    _sqlite_fts()


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS interaction_monthly_trg ON interactions")
        op.execute("DROP FUNCTION IF EXISTS interaction_monthly_apply()")
        for table in ("clients", "contact_persons"):
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_name_trgm")
    else:
        for fts, _table in FTS:
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
        for suffix in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS interaction_monthly_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {fts}")
    for name, table, _cols, _where in INDEXES:
        op.drop_index(name, table_name=table, if_exists=True)
    op.drop_table("interaction_monthly")
