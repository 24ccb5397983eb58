"""import batches and what each created or added (client base import, undo)

Revision ID: 0005_imports
Revises: 0004_scale
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_imports"
down_revision: str | None = "0004_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "import_batches",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("user_id", _ID, nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_import_batches_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batches")),
    )
    op.create_table(
        "import_links",
        sa.Column("id", _ID, nullable=False),
        sa.Column("batch_id", _ID, nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("field", sa.String(length=50), nullable=True),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["import_batches.id"],
            name=op.f("fk_import_links_batch_id_import_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_links")),
    )
    with op.batch_alter_table("import_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_import_links_batch_id"), ["batch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("import_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_links_batch_id"))
    op.drop_table("import_links")
    op.drop_table("import_batches")
