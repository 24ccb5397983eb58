"""scale counters: open leads and tasks per owner and a users version, kept by triggers
in the same transaction as the lead, task or user; keyset indexes for manager lists

``routing_counters`` holds ``load:<user id>`` (open leads, ``new``/``in_progress``, owned
plus open tasks assigned) and ``users`` (bumped by every change to ``users``).  The
assigner reads this small table instead of recounting leads and tasks per event, and
rebuilds its cached roster only when ``users`` moved.  Filled once from the existing
rows (no row rewritten).  The ``(owner, id)`` indexes serve managers' lists ordered by
id; the tasks and deals indexes the open-task lists and the manager-activity counts
(built ``CONCURRENTLY`` on PostgreSQL).

Revision ID: 0007_scale_counters
Revises: 0016_rules_in_db
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_scale_counters"
down_revision: str | None = "0016_rules_in_db"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, table, columns); the same list is declared on the models.
INDEXES: tuple[tuple[str, str, list[str]], ...] = (
    ("ix_clients_owner_id_id", "clients", ["owner_id", "id"]),
    ("ix_leads_owner_id_id", "leads", ["owner_id", "id"]),
    ("ix_deals_owner_id_id", "deals", ["owner_id", "id"]),
    # open tasks by due time (the admin's open list) and per assignee (a manager's open
    # list, the overdue counts of the manager-activity report): no table lookups
    ("ix_tasks_status_due_order", "tasks", ["status", "due_at", "id"]),
    ("ix_tasks_status_assignee_due", "tasks", ["status", "assignee_id", "due_at", "id"]),
    # deals won per owner and period (manager activity), covering the amount
    ("ix_deals_stage_owner_closed", "deals", ["stage", "owner_id", "closed_at", "amount"]),
    # refusals per period and reason (the requests report): a covering range of rejected
    ("ix_leads_status_created_reason", "leads", ["status", "created_at", "loss_reason"]),
)

# (table, owner column, open condition on a row alias)
_LOADS = (
    ("leads", "owner_id", "{r}.status IN ('new', 'in_progress')"),
    ("tasks", "assignee_id", "{r}.status = 'open'"),
)
_UPSERT = "ON CONFLICT (key) DO UPDATE SET n = routing_counters.n + 1"


def _fill() -> None:
    parts = " UNION ALL ".join(
        f"SELECT {col} AS u, count(*) AS c FROM {table} "
        f"WHERE {cond.format(r=table)} AND {col} IS NOT NULL GROUP BY {col}"
        for table, col, cond in _LOADS
    )
    op.execute(
        "INSERT INTO routing_counters (key, n) "
        f"SELECT 'load:' || u, sum(c) FROM ({parts}) AS x GROUP BY u"
    )
    op.execute("INSERT INTO routing_counters (key, n) VALUES ('users', 1)")


def _pg_triggers() -> None:
    for table, col, cond in _LOADS:
        old, new = cond.format(r="OLD"), cond.format(r="NEW")
        op.execute(f"""
CREATE OR REPLACE FUNCTION routing_counters_{table}() RETURNS trigger AS $$
DECLARE
  was boolean := TG_OP IN ('DELETE', 'UPDATE') AND OLD.{col} IS NOT NULL AND {old};
  now_ boolean := TG_OP IN ('INSERT', 'UPDATE') AND NEW.{col} IS NOT NULL AND {new};
BEGIN
  IF TG_OP = 'UPDATE' AND was AND now_ AND OLD.{col} = NEW.{col} THEN
    RETURN NULL;
  END IF;
  IF was THEN
    UPDATE routing_counters SET n = n - 1 WHERE key = 'load:' || OLD.{col};
  END IF;
  IF now_ THEN
    INSERT INTO routing_counters (key, n) VALUES ('load:' || NEW.{col}, 1) {_UPSERT};
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
""")
        op.execute(
            f"CREATE TRIGGER routing_counters_{table}_trg AFTER INSERT OR DELETE OR UPDATE OF "
            f"status, {col} ON {table} FOR EACH ROW EXECUTE FUNCTION routing_counters_{table}()"
        )
    op.execute(f"""
CREATE OR REPLACE FUNCTION routing_counters_users() RETURNS trigger AS $$
BEGIN
  INSERT INTO routing_counters (key, n) VALUES ('users', 1) {_UPSERT};
  RETURN NULL;
END $$ LANGUAGE plpgsql
""")
    op.execute(
        "CREATE TRIGGER routing_counters_users_trg AFTER INSERT OR DELETE OR UPDATE ON users "
        "FOR EACH STATEMENT EXECUTE FUNCTION routing_counters_users()"
    )


def _sqlite_triggers() -> None:
    for table, col, cond in _LOADS:
        old, new = cond.format(r="OLD"), cond.format(r="NEW")
        sub = (
            f"UPDATE routing_counters SET n = n - 1 WHERE OLD.{col} IS NOT NULL AND {old} "
            f"AND key = 'load:' || OLD.{col};"
        )
        add = (
            f"INSERT INTO routing_counters (key, n) SELECT 'load:' || NEW.{col}, 1 "
            f"WHERE NEW.{col} IS NOT NULL AND {new} {_UPSERT};"
        )
        name = f"routing_counters_{table}"
        op.execute(f"CREATE TRIGGER {name}_ai AFTER INSERT ON {table} BEGIN {add} END")
        op.execute(f"CREATE TRIGGER {name}_ad AFTER DELETE ON {table} BEGIN {sub} END")
        op.execute(
            f"CREATE TRIGGER {name}_au AFTER UPDATE OF status, {col} ON {table} "
            f"WHEN NOT (OLD.{col} IS NEW.{col} AND ({old}) IS ({new})) BEGIN {sub} {add} END"
        )
    bump = f"INSERT INTO routing_counters (key, n) VALUES ('users', 1) {_UPSERT};"
    for what in ("INSERT", "DELETE", "UPDATE"):
        op.execute(
            f"CREATE TRIGGER routing_counters_users_{what.lower()} AFTER {what} ON users "
            f"BEGIN {bump} END"
        )


def _pg_indexes(bind: sa.Connection) -> None:
    """CONCURRENTLY, outside the migration's transaction (as in 0004_scale)."""
    level = bind.default_isolation_level or "READ COMMITTED"
    if bind.in_transaction():
        bind.commit()
    bind.execution_options(isolation_level="AUTOCOMMIT")
    try:
        for name, table, cols in INDEXES:
            invalid = bind.exec_driver_sql(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                f"WHERE c.relname = '{name}' AND NOT i.indisvalid"
            ).first()
            if invalid:
                bind.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            bind.exec_driver_sql(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({', '.join(cols)})"
            )
    finally:
        if bind.in_transaction():
            bind.commit()
        bind.execution_options(isolation_level=level)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.create_table(
        "routing_counters",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_routing_counters"),
    )
    # Triggers first, then the fill, in one transaction: on PostgreSQL a concurrent
    # writer waits on the counter rows' locks until the fill commits.
    if postgres:
        _pg_triggers()
    else:
        _sqlite_triggers()
    _fill()
    if postgres:
        _pg_indexes(bind)
    else:
        for name, table, cols in INDEXES:
            op.create_index(name, table, cols, if_not_exists=True)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table, _col, _cond in _LOADS:
            op.execute(f"DROP TRIGGER IF EXISTS routing_counters_{table}_trg ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS routing_counters_{table}()")
        op.execute("DROP TRIGGER IF EXISTS routing_counters_users_trg ON users")
        op.execute("DROP FUNCTION IF EXISTS routing_counters_users()")
    else:
        for table, _col, _cond in _LOADS:
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS routing_counters_{table}_{suffix}")
        for what in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS routing_counters_users_{what}")
    for name, table, _cols in INDEXES:
        op.drop_index(name, table_name=table, if_exists=True)
    op.drop_table("routing_counters")
