"""sales plans; talk time in the monthly interaction counts; a lead's first response

- ``sales_plans``: a plan per manager or team per month or quarter (amount won, deals
  won, calls, meetings).
- ``interaction_monthly.talk_s``: the sum of ``duration_s`` beside the count, kept by
  the same triggers (rewritten here to carry it) and filled from the interactions.
- ``leads.first_response_at``: the earliest outbound interaction on the lead or an
  answered call, kept by triggers on ``interactions`` and filled once.
- indexes on ``audit_entries`` by (entity, entity_id, at) and (user_id, at).

No existing row is removed; the downgrade restores the 0004 triggers.

Revision ID: 0009_sales_plans
Revises: 0008_pipelines
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_sales_plans"
down_revision: str | None = "0008_pipelines"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ROLLUP_KEY = "user_id, month, channel, direction, outcome"
_KEY_MATCH = (
    "m.user_id = g.user_id AND m.month = g.month AND m.channel = g.channel "
    "AND m.direction = g.direction AND m.outcome = g.outcome"
)


def _sqlite_rollup(talk: bool) -> tuple[str, str]:
    """(add NEW, subtract OLD) statements of the SQLite rollup triggers."""
    t_new = "coalesce(NEW.duration_s, 0)" if talk else ""
    t_old = "coalesce(OLD.duration_s, 0)" if talk else ""
    add = (
        f"INSERT INTO interaction_monthly ({ROLLUP_KEY}, n{', talk_s' if talk else ''}) "
        "SELECT NEW.user_id, strftime('%Y-%m', NEW.occurred_at), NEW.channel, NEW.direction, "
        f"coalesce(NEW.outcome, ''), 1{', ' + t_new if talk else ''} "
        "WHERE NEW.user_id IS NOT NULL "
        f"ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET n = n + 1"
        f"{', talk_s = talk_s + excluded.talk_s' if talk else ''};"
    )
    sub = (
        f"UPDATE interaction_monthly SET n = n - 1{f', talk_s = talk_s - {t_old}' if talk else ''} "
        "WHERE OLD.user_id IS NOT NULL "
        "AND user_id = OLD.user_id AND month = strftime('%Y-%m', OLD.occurred_at) "
        "AND channel = OLD.channel AND direction = OLD.direction "
        "AND outcome = coalesce(OLD.outcome, '');"
    )
    return add, sub


def _pg_rollup_function(talk: bool) -> str:
    month_old = "to_char(OLD.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM')"
    month_new = "to_char(NEW.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM')"
    sub_talk = ", talk_s = talk_s - coalesce(OLD.duration_s, 0)" if talk else ""
    ins_cols = ", talk_s" if talk else ""
    ins_vals = ", coalesce(NEW.duration_s, 0)" if talk else ""
    upd_talk = ", talk_s = interaction_monthly.talk_s + excluded.talk_s" if talk else ""
    return f"""
CREATE OR REPLACE FUNCTION interaction_monthly_apply() RETURNS trigger AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.user_id IS NOT NULL THEN
    UPDATE interaction_monthly SET n = n - 1{sub_talk}
     WHERE user_id = OLD.user_id
       AND month = {month_old}
       AND channel = OLD.channel AND direction = OLD.direction
       AND outcome = coalesce(OLD.outcome, '');
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.user_id IS NOT NULL THEN
    INSERT INTO interaction_monthly ({ROLLUP_KEY}, n{ins_cols})
    VALUES (NEW.user_id, {month_new},
            NEW.channel, NEW.direction, coalesce(NEW.outcome, ''), 1{ins_vals})
    ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET n = interaction_monthly.n + 1{upd_talk};
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""


def _tracked(talk: bool) -> str:
    return "user_id, occurred_at, channel, direction, outcome" + (", duration_s" if talk else "")


def _rollup_triggers(postgres: bool, talk: bool) -> None:
    """(Re)create the triggers that keep ``interaction_monthly``."""
    if postgres:
        op.execute(_pg_rollup_function(talk))
        op.execute("DROP TRIGGER IF EXISTS interaction_monthly_trg ON interactions")
        op.execute(
            f"CREATE TRIGGER interaction_monthly_trg AFTER INSERT OR DELETE OR UPDATE OF "
            f"{_tracked(talk)} ON interactions FOR EACH ROW "
            "EXECUTE FUNCTION interaction_monthly_apply()"
        )
        return
    add, sub = _sqlite_rollup(talk)
    for suffix in ("ai", "ad", "au"):
        op.execute(f"DROP TRIGGER IF EXISTS interaction_monthly_{suffix}")
    on = "ON interactions BEGIN"
    op.execute(f"CREATE TRIGGER interaction_monthly_ai AFTER INSERT {on} {add} END")
    op.execute(f"CREATE TRIGGER interaction_monthly_ad AFTER DELETE {on} {sub} END")
    op.execute(
        f"CREATE TRIGGER interaction_monthly_au AFTER UPDATE OF {_tracked(talk)} ON interactions "
        f"BEGIN {sub} {add} END"
    )


_RESPONSE = "(NEW.direction = 'out' OR NEW.outcome = 'answered')"
_SET_FIRST = (
    "UPDATE leads SET first_response_at = NEW.occurred_at WHERE id = NEW.lead_id "
    "AND (first_response_at IS NULL OR first_response_at > NEW.occurred_at);"
)
_RESPONSE_COLS = "lead_id, direction, outcome, occurred_at"


def _first_response_triggers(postgres: bool) -> None:
    if postgres:
        op.execute(
            "CREATE OR REPLACE FUNCTION lead_first_response() RETURNS trigger AS $$ "
            f"BEGIN IF NEW.lead_id IS NOT NULL AND {_RESPONSE} THEN {_SET_FIRST} END IF; "
            "RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            f"CREATE TRIGGER lead_first_response_trg AFTER INSERT OR UPDATE OF {_RESPONSE_COLS} "
            "ON interactions FOR EACH ROW EXECUTE FUNCTION lead_first_response()"
        )
        return
    when = f"WHEN NEW.lead_id IS NOT NULL AND {_RESPONSE}"
    op.execute(
        f"CREATE TRIGGER lead_first_response_ai AFTER INSERT ON interactions {when} "
        f"BEGIN {_SET_FIRST} END"
    )
    op.execute(
        f"CREATE TRIGGER lead_first_response_au AFTER UPDATE OF {_RESPONSE_COLS} ON interactions "
        f"{when} BEGIN {_SET_FIRST} END"
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "sales_plans",
        sa.Column("id", _ID, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("user_id", _ID, nullable=True),
        sa.Column("team", sa.String(length=100), nullable=True),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("deals", sa.Integer(), nullable=True),
        sa.Column("calls", sa.Integer(), nullable=True),
        sa.Column("meetings", sa.Integer(), nullable=True),
        sa.Column("updated_by", _ID, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sales_plans_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f("fk_sales_plans_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_plans")),
        sa.UniqueConstraint("period", "subject", name=op.f("uq_sales_plans_period_subject")),
    )
    op.create_index(op.f("ix_sales_plans_user_id"), "sales_plans", ["user_id"])
    # The audit log read by entity (a client's history) and by author.
    op.create_index("ix_audit_entries_entity", "audit_entries", ["entity", "entity_id", "at"])
    op.create_index("ix_audit_entries_user_at", "audit_entries", ["user_id", "at"])

    op.add_column(
        "interaction_monthly",
        sa.Column("talk_s", sa.BigInteger(), server_default="0", nullable=False),
    )
    _rollup_triggers(postgres, talk=True)
    month = (
        "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM')"
        if postgres
        else "strftime('%Y-%m', occurred_at)"
    )
    op.execute(
        "UPDATE interaction_monthly AS m SET talk_s = g.talk FROM ("
        f"SELECT user_id, {month} AS month, channel, direction, coalesce(outcome, '') AS outcome, "
        "coalesce(sum(duration_s), 0) AS talk FROM interactions "
        f"WHERE user_id IS NOT NULL AND duration_s IS NOT NULL "
        f"GROUP BY user_id, {month}, channel, direction, coalesce(outcome, '')) AS g "
        f"WHERE {_KEY_MATCH}"
    )

    op.add_column("leads", sa.Column("first_response_at", sa.DateTime(timezone=True)))
    _first_response_triggers(postgres)
    first = (
        "SELECT min(i.occurred_at) FROM interactions i WHERE i.lead_id = leads.id "
        "AND (i.direction = 'out' OR i.outcome = 'answered')"
    )
    op.execute(f"UPDATE leads SET first_response_at = ({first}) WHERE EXISTS ({first})")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS lead_first_response_trg ON interactions")
        op.execute("DROP FUNCTION IF EXISTS lead_first_response()")
    else:
        for suffix in ("ai", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS lead_first_response_{suffix}")
    op.drop_column("leads", "first_response_at")
    _rollup_triggers(postgres, talk=False)
    op.drop_column("interaction_monthly", "talk_s")
    op.drop_index("ix_audit_entries_user_at", table_name="audit_entries")
    op.drop_index("ix_audit_entries_entity", table_name="audit_entries")
    op.drop_index(op.f("ix_sales_plans_user_id"), table_name="sales_plans")
    op.drop_table("sales_plans")
