"""campaigns: a mass email to an audience, one recipient row (and one outbox command) per
address; users get a phone and a signature for campaign templates; the outbox is asked
by channel first (campaign messages are many)

Revision ID: 0020_campaigns
Revises: 0007_scale_counters
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_campaigns"
down_revision: str | None = "0019_two_factor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("phone", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("signature", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "campaigns",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("smtp_account", sa.String(length=100), nullable=False),
        sa.Column("send_at", _TS, nullable=True),
        sa.Column("created_by", _ID, nullable=True),
        sa.Column("started_by", _ID, nullable=True),
        sa.Column("materialized", sa.Boolean(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("locked_by", sa.String(length=100), nullable=True),
        sa.Column("locked_until", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_campaigns_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["started_by"],
            ["users.id"],
            name=op.f("fk_campaigns_started_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index("ix_campaigns_claim", "campaigns", ["status", "locked_until"])
    op.create_index(op.f("ix_campaigns_status"), "campaigns", ["status"])
    op.create_index(op.f("ix_campaigns_created_by"), "campaigns", ["created_by"])
    op.create_table(
        "campaign_recipients",
        sa.Column("id", _ID, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("client_id", _ID, nullable=True),
        sa.Column("contact_person_id", _ID, nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=True),
        sa.Column("outbox_id", _ID, nullable=True),
        sa.Column("message_id", sa.String(length=500), nullable=True),
        sa.Column("sent_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_recipients_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_campaign_recipients_client_id_clients"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_person_id"],
            ["contact_persons.id"],
            name=op.f("fk_campaign_recipients_contact_person_id_contact_persons"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_campaign_recipients_outbox_id_outbox"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_recipients")),
        sa.UniqueConstraint(
            "campaign_id", "email", name=op.f("uq_campaign_recipients_campaign_id_email")
        ),
    )
    op.create_index(
        "ix_campaign_recipients_status", "campaign_recipients", ["campaign_id", "status", "id"]
    )
    op.create_index(op.f("ix_campaign_recipients_client_id"), "campaign_recipients", ["client_id"])
    op.create_index(
        op.f("ix_campaign_recipients_message_id"), "campaign_recipients", ["message_id"]
    )
    op.create_index(op.f("ix_campaign_recipients_sent_at"), "campaign_recipients", ["sent_at"])
    op.create_index("ix_outbox_channel_due", "outbox", ["channel", "status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_channel_due", table_name="outbox")
    op.drop_table("campaign_recipients")
    op.drop_table("campaigns")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("signature")
        batch.drop_column("phone")
