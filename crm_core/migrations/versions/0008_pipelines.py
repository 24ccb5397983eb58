"""pipelines: several funnels with their stages and loss-reason catalogues; deal line items

Today's seven stages (crm_core/stages.py) become the default pipeline "Продажи"; every
deal joins it (its stage codes and stage history are kept as they are).  The loss
reasons already written on lost deals join the default catalogue, and each lost deal
points at its reason.

Revision ID: 0008_pipelines
Revises: 0006_client_profile
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_pipelines"
down_revision: str | None = "0006_client_profile"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# (code, name, name_en, probability, kind, required fields): a copy of crm_core/stages.py
# as it was, so that this migration does not change when that module does.
DEFAULT_STAGES: tuple[tuple[str, str, str, int, str, list[str]], ...] = (
    ("new", "Новая", "New", 10, "open", []),
    ("qualification", "Квалификация", "Qualification", 20, "open", []),
    ("proposal", "Коммерческое предложение", "Proposal", 40, "open", []),
    ("negotiation", "Переговоры", "Negotiation", 60, "open", []),
    ("contract", "Договор", "Contract", 80, "open", ["amount"]),
    ("won", "Успешно закрыта", "Won", 100, "won", []),
    ("lost", "Проиграна", "Lost", 0, "lost", []),
)
DEFAULT_REASONS = (
    ("Дорого", "Too expensive"),
    ("Выбрали конкурента", "Chose a competitor"),
    ("Нет бюджета", "No budget"),
    ("Не выходит на связь", "Cannot be reached"),
    ("Потребность отпала", "No longer needed"),
    ("Другое", "Other"),
)


def _fk_column(table: str, column: str, target: str, ondelete: str) -> None:
    """A nullable column on an existing table that points at ``target``, without
    rebuilding the table.  On PostgreSQL it is a foreign key.  On SQLite it is a plain
    column: adding or dropping a foreign key there means rebuilding ``deals``, and
    dropping ``deals`` fires the ON DELETE of every row pointing at it (leads, tasks,
    interactions); the services keep those ids valid (a pipeline with deals is not
    deleted, a used loss reason is archived, never deleted)."""
    if op.get_bind().dialect.name == "sqlite":
        op.add_column(table, sa.Column(column, sa.Integer(), nullable=True))
    else:
        op.add_column(table, sa.Column(column, sa.BigInteger(), nullable=True))
        name = f"fk_{table}_{column}_{target}"
        op.create_foreign_key(name, table, target, [column], ["id"], ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipelines")),
        sa.UniqueConstraint("name", name=op.f("uq_pipelines_name")),
    )
    op.create_table(
        "pipeline_stages",
        sa.Column("id", _ID, nullable=False),
        sa.Column("pipeline_id", _ID, nullable=False),
        sa.Column("code", sa.String(length=30), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("required_fields", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_pipeline_stages_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_stages")),
        sa.UniqueConstraint(
            "pipeline_id", "code", name=op.f("uq_pipeline_stages_pipeline_id_code")
        ),
    )
    op.create_index(
        op.f("ix_pipeline_stages_pipeline_id"), "pipeline_stages", ["pipeline_id"], unique=False
    )
    op.create_table(
        "loss_reasons",
        sa.Column("id", _ID, nullable=False),
        sa.Column("pipeline_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("name_en", sa.String(length=300), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_loss_reasons_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loss_reasons")),
        sa.UniqueConstraint("pipeline_id", "name", name=op.f("uq_loss_reasons_pipeline_id_name")),
    )
    op.create_index(
        op.f("ix_loss_reasons_pipeline_id"), "loss_reasons", ["pipeline_id"], unique=False
    )
    op.create_table(
        "deal_items",
        sa.Column("id", _ID, nullable=False),
        sa.Column("deal_id", _ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=14, scale=3), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("price", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("discount", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_deal_items_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_items")),
    )
    op.create_index(op.f("ix_deal_items_deal_id"), "deal_items", ["deal_id"], unique=False)

    _fk_column("deals", "pipeline_id", "pipelines", "RESTRICT")
    _fk_column("deals", "loss_reason_id", "loss_reasons", "SET NULL")
    op.add_column("deals", sa.Column("loss_comment", sa.Text(), nullable=True))

    _fill_default_pipeline()
    op.create_index("ix_deals_pipeline_stage", "deals", ["pipeline_id", "stage", "id"])
    op.create_index("ix_deals_pipeline_created", "deals", ["pipeline_id", "created_at"])


def _fill_default_pipeline() -> None:
    """The default pipeline from today's stages; every deal joins it, set-based (no
    Python loop over the deals)."""
    conn = op.get_bind()
    now = sa.func.now() if conn.dialect.name == "postgresql" else sa.text("CURRENT_TIMESTAMP")
    pipelines = sa.table(
        "pipelines",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("name_en", sa.String),
        sa.column("is_default", sa.Boolean),
        sa.column("position", sa.Integer),
        sa.column("created_at", sa.DateTime),
    )
    conn.execute(
        pipelines.insert().values(
            name="Продажи", name_en="Sales", is_default=True, position=0, created_at=now
        )
    )
    pid = conn.scalar(sa.select(pipelines.c.id).where(pipelines.c.is_default))
    stages = sa.table(
        "pipeline_stages",
        sa.column("pipeline_id", sa.Integer),
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("name_en", sa.String),
        sa.column("position", sa.Integer),
        sa.column("probability", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("required_fields", sa.JSON),
    )
    conn.execute(
        stages.insert(),
        [
            {
                "pipeline_id": pid,
                "code": code,
                "name": name,
                "name_en": name_en,
                "position": i,
                "probability": prob,
                "kind": kind,
                "required_fields": required,
            }
            for i, (code, name, name_en, prob, kind, required) in enumerate(DEFAULT_STAGES)
        ],
    )
    reasons = sa.table(
        "loss_reasons",
        sa.column("pipeline_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("name_en", sa.String),
        sa.column("position", sa.Integer),
        sa.column("active", sa.Boolean),
    )
    conn.execute(
        reasons.insert(),
        [
            {"pipeline_id": pid, "name": ru, "name_en": en, "position": i, "active": True}
            for i, (ru, en) in enumerate(DEFAULT_REASONS)
        ],
    )
    # Reasons typed on lost deals before the catalogue: kept, as catalogue entries.
    true = "true" if conn.dialect.name == "postgresql" else "1"
    conn.execute(
        sa.text(
            "INSERT INTO loss_reasons (pipeline_id, name, name_en, position, active) "
            f"SELECT :pid, d.loss_reason, NULL, 100, {true} FROM deals d "
            "WHERE d.loss_reason IS NOT NULL AND d.loss_reason <> '' "
            "AND NOT EXISTS (SELECT 1 FROM loss_reasons r "
            "WHERE r.pipeline_id = :pid AND r.name = d.loss_reason) "
            "GROUP BY d.loss_reason"
        ),
        {"pid": pid},
    )
    conn.execute(sa.text("UPDATE deals SET pipeline_id = :pid"), {"pid": pid})
    conn.execute(
        sa.text(
            "UPDATE deals SET loss_reason_id = (SELECT r.id FROM loss_reasons r "
            "WHERE r.pipeline_id = :pid AND r.name = deals.loss_reason) "
            "WHERE loss_reason IS NOT NULL"
        ),
        {"pid": pid},
    )


def downgrade() -> None:
    op.drop_index("ix_deals_pipeline_created", table_name="deals")
    op.drop_index("ix_deals_pipeline_stage", table_name="deals")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite >= 3.35 drops a column in place (no table rebuild, no foreign key there).
        for column in ("loss_comment", "loss_reason_id", "pipeline_id"):
            op.execute(f"ALTER TABLE deals DROP COLUMN {column}")
    else:
        op.drop_constraint("fk_deals_loss_reason_id_loss_reasons", "deals", type_="foreignkey")
        op.drop_constraint("fk_deals_pipeline_id_pipelines", "deals", type_="foreignkey")
        for column in ("loss_comment", "loss_reason_id", "pipeline_id"):
            op.drop_column("deals", column)
    op.drop_index(op.f("ix_deal_items_deal_id"), table_name="deal_items")
    op.drop_table("deal_items")
    op.drop_index(op.f("ix_loss_reasons_pipeline_id"), table_name="loss_reasons")
    op.drop_table("loss_reasons")
    op.drop_index(op.f("ix_pipeline_stages_pipeline_id"), table_name="pipeline_stages")
    op.drop_table("pipeline_stages")
    op.drop_table("pipelines")
