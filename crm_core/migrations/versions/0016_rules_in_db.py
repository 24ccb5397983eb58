"""routing rules in the database: every version, the newest in force in every process

Revision ID: 0016_rules_in_db
Revises: 0015_live_events
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_rules_in_db"
down_revision: str | None = "0015_live_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "routing_rules_versions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("created_by", _ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_routing_rules_versions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rules_versions")),
    )


def downgrade() -> None:
    op.drop_table("routing_rules_versions")
