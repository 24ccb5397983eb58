"""segments: clients.last_contact_at kept by the database, and filled for existing rows

Revision ID: 0010_segments
Revises: 0009_sales_plans

Rule segments test "days since last contact" on ``clients.last_contact_at`` (indexed,
added by 0006).  This migration:
- fills it for every existing client in ONE ``UPDATE ... FROM`` over the interactions
  aggregated per client (a single scan of ``interactions``: fine on a million rows);
- adds triggers on ``interactions`` (insert, and a change of ``client_id``: an
  interaction moved to another client by a lead conversion or a merge) that move it
  forward in the same transaction as the interaction itself, whoever writes it: the
  ingest pipeline, the outbox's outbound messages and calls, imports.
No row is removed; the downgrade drops the triggers and leaves the values.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_segments"
down_revision: str | None = "0009_sales_plans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = """
UPDATE clients SET last_contact_at = agg.at
FROM (
  SELECT client_id, max(occurred_at) AS at FROM interactions
  WHERE client_id IS NOT NULL GROUP BY client_id
) AS agg
WHERE clients.id = agg.client_id
  AND (clients.last_contact_at IS NULL OR clients.last_contact_at < agg.at)
"""

_SET = """
  UPDATE clients SET last_contact_at = NEW.occurred_at
   WHERE id = NEW.client_id
     AND (last_contact_at IS NULL OR last_contact_at < NEW.occurred_at);
"""

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION clients_last_contact_apply() RETURNS trigger AS $$
BEGIN
  IF NEW.client_id IS NOT NULL THEN
    {_SET}
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(_BACKFILL)
    if postgres:
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER clients_last_contact_trg AFTER INSERT OR UPDATE OF client_id "
            "ON interactions FOR EACH ROW EXECUTE FUNCTION clients_last_contact_apply()"
        )
    else:
        when = "WHEN NEW.client_id IS NOT NULL"
        op.execute(
            f"CREATE TRIGGER clients_last_contact_ai AFTER INSERT ON interactions "
            f"{when} BEGIN {_SET} END"
        )
        op.execute(
            f"CREATE TRIGGER clients_last_contact_au AFTER UPDATE OF client_id ON interactions "
            f"{when} BEGIN {_SET} END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS clients_last_contact_trg ON interactions")
        op.execute("DROP FUNCTION IF EXISTS clients_last_contact_apply()")
    else:
        op.execute("DROP TRIGGER IF EXISTS clients_last_contact_ai")
        op.execute("DROP TRIGGER IF EXISTS clients_last_contact_au")
