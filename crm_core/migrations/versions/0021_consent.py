"""email consent: the state of each address (granted, withdrawn, unsubscribed, bounced,
complained) and the history of its changes

``email_consent`` is keyed on the normalized address, so a campaign's suppression check
of thousands of addresses is one primary-key lookup each (``email IN (...)``, batched).
``email_consent_events`` keeps who changed what, when, from where and for which
campaign, read per address newest first.

Revision ID: 0021_consent
Revises: 0020_campaigns
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_consent"
down_revision: str | None = "0020_campaigns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "email_consent",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_by", ID, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f("fk_email_consent_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_email_consent")),
    )
    op.create_table(
        "email_consent_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("previous_state", sa.String(length=20), nullable=True),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_email_consent_events_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_consent_events")),
    )
    op.create_index(
        "ix_email_consent_events_email_at", "email_consent_events", ["email", "at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_email_consent_events_email_at", table_name="email_consent_events")
    op.drop_table("email_consent_events")
    op.drop_table("email_consent")
