"""lead_daily: requests per UTC day and channel (and refusals per reason), kept by
triggers on ``leads`` in the same transaction as the lead

The requests report (``/analytics/requests``) of an admin reads whole days from this
table instead of grouping every lead: the rows of ``(day, source, 0, '')`` count all the
leads created that day through that channel (``converted``: those converted now), those
of ``(day, source, 1, reason)`` the rejected ones per loss reason (``''`` for none).
Filled once from the existing leads (no row rewritten).

Revision ID: 0024_lead_daily
Revises: 0007_scale_counters
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_lead_daily"
down_revision: str | None = "0021_consent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = "day, source, refused, reason"
_PG_DAY = "to_char({r}.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
_SQLITE_DAY = "date({r}.created_at)"
_TRACKED = "created_at, source, status, loss_reason"


def fill_sql(postgres: bool) -> str:
    day = (_PG_DAY if postgres else _SQLITE_DAY).format(r="leads")
    return (
        f"INSERT INTO lead_daily ({KEY}, n, converted) "
        f"SELECT {day}, source, 0, '', count(*), "
        "sum(CASE WHEN status = 'converted' THEN 1 ELSE 0 END) "
        f"FROM leads GROUP BY {day}, source "
        "UNION ALL "
        f"SELECT {day}, source, 1, coalesce(loss_reason, ''), count(*), 0 "
        f"FROM leads WHERE status = 'rejected' GROUP BY {day}, source, coalesce(loss_reason, '')"
    )


_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION lead_daily_apply() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.created_at = NEW.created_at AND OLD.source = NEW.source
     AND OLD.status = NEW.status
     AND OLD.loss_reason IS NOT DISTINCT FROM NEW.loss_reason THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    UPDATE lead_daily SET n = n - 1,
           converted = converted - (CASE WHEN OLD.status = 'converted' THEN 1 ELSE 0 END)
     WHERE day = {_PG_DAY.format(r="OLD")} AND source = OLD.source
       AND refused = 0 AND reason = '';
    IF OLD.status = 'rejected' THEN
      UPDATE lead_daily SET n = n - 1
       WHERE day = {_PG_DAY.format(r="OLD")} AND source = OLD.source
         AND refused = 1 AND reason = coalesce(OLD.loss_reason, '');
    END IF;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO lead_daily ({KEY}, n, converted)
    VALUES ({_PG_DAY.format(r="NEW")}, NEW.source, 0, '', 1,
            CASE WHEN NEW.status = 'converted' THEN 1 ELSE 0 END)
    ON CONFLICT ({KEY}) DO UPDATE
      SET n = lead_daily.n + 1, converted = lead_daily.converted + EXCLUDED.converted;
    IF NEW.status = 'rejected' THEN
      INSERT INTO lead_daily ({KEY}, n, converted)
      VALUES ({_PG_DAY.format(r="NEW")}, NEW.source, 1, coalesce(NEW.loss_reason, ''), 1, 0)
      ON CONFLICT ({KEY}) DO UPDATE SET n = lead_daily.n + 1;
    END IF;
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""

_SQLITE_OLD_DAY = _SQLITE_DAY.format(r="OLD")
_SQLITE_NEW_DAY = _SQLITE_DAY.format(r="NEW")
_SQLITE_SUB = (
    "UPDATE lead_daily SET n = n - 1, "
    "converted = converted - (CASE WHEN OLD.status = 'converted' THEN 1 ELSE 0 END) "
    f"WHERE day = {_SQLITE_OLD_DAY} AND source = OLD.source AND refused = 0 AND reason = ''; "
    "UPDATE lead_daily SET n = n - 1 WHERE OLD.status = 'rejected' "
    f"AND day = {_SQLITE_OLD_DAY} AND source = OLD.source AND refused = 1 "
    "AND reason = coalesce(OLD.loss_reason, '');"
)
_SQLITE_ADD = (
    f"INSERT INTO lead_daily ({KEY}, n, converted) "
    f"VALUES ({_SQLITE_NEW_DAY}, NEW.source, 0, '', 1, "
    "CASE WHEN NEW.status = 'converted' THEN 1 ELSE 0 END) "
    f"ON CONFLICT ({KEY}) DO UPDATE "
    "SET n = lead_daily.n + 1, converted = lead_daily.converted + excluded.converted; "
    f"INSERT INTO lead_daily ({KEY}, n, converted) "
    f"SELECT {_SQLITE_NEW_DAY}, NEW.source, 1, coalesce(NEW.loss_reason, ''), 1, 0 "
    f"WHERE NEW.status = 'rejected' ON CONFLICT ({KEY}) DO UPDATE SET n = lead_daily.n + 1;"
)
_SQLITE_CHANGED = (
    "NOT (OLD.created_at IS NEW.created_at AND OLD.source IS NEW.source "
    "AND OLD.status IS NEW.status AND OLD.loss_reason IS NEW.loss_reason)"
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "lead_daily",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("converted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "source", "refused", "reason", name="pk_lead_daily"),
    )
    # Triggers first, then the fill, in one transaction: on PostgreSQL a concurrent
    # writer waits on the rows' locks until the fill commits.
    if postgres:
        op.execute(_PG_FUNCTION)
        op.execute(
            f"CREATE TRIGGER lead_daily_trg AFTER INSERT OR DELETE OR UPDATE OF {_TRACKED} "
            "ON leads FOR EACH ROW EXECUTE FUNCTION lead_daily_apply()"
        )
    else:
        op.execute(f"CREATE TRIGGER lead_daily_ai AFTER INSERT ON leads BEGIN {_SQLITE_ADD} END")
        op.execute(f"CREATE TRIGGER lead_daily_ad AFTER DELETE ON leads BEGIN {_SQLITE_SUB} END")
        op.execute(
            f"CREATE TRIGGER lead_daily_au AFTER UPDATE OF {_TRACKED} ON leads "
            f"WHEN {_SQLITE_CHANGED} BEGIN {_SQLITE_SUB} {_SQLITE_ADD} END"
        )
    op.execute(fill_sql(postgres))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS lead_daily_trg ON leads")
        op.execute("DROP FUNCTION IF EXISTS lead_daily_apply()")
    else:
        for suffix in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS lead_daily_{suffix}")
    op.drop_table("lead_daily")
