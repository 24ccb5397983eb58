"""live tickets: single-use tickets that open a live stream without the token in the URL

Revision ID: 0003_live_tickets
Revises: 0002_calls_recording
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_live_tickets"
down_revision: str | None = "0002_calls_recording"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "live_tickets",
        sa.Column("ticket_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_live_tickets_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_hash", name=op.f("pk_live_tickets")),
    )
    with op.batch_alter_table("live_tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_live_tickets_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_live_tickets_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("live_tickets")
