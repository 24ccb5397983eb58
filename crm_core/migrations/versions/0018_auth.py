"""sign-in: users.password_hash; API tokens, sessions, invitation/reset links, failed
sign-ins

Every user's existing API token (``users.token_hash``) becomes an ``api_tokens`` row
(scope ``full``, origin ``migrated``), so the tokens in use keep working.  Live tickets
now name the credential they were issued for (``t:<id>``/``s:<id>``): the few pending
ones (30 s each) are dropped.

Revision ID: 0018_auth
Revises: 0007_scale_counters
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_auth"
down_revision: str | None = "0007_scale_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def _user_fk(table: str, column: str = "user_id", ondelete: str = "CASCADE") -> sa.Constraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete=ondelete
    )


def upgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.String(length=255), nullable=True))
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("origin", sa.String(length=10), nullable=False),
        sa.Column("expires_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_used_at", WHEN, nullable=True),
        sa.Column("revoked_at", WHEN, nullable=True),
        _user_fk("api_tokens"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_table(
        "auth_sessions",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=200), nullable=False),
        sa.Column("user_agent", sa.String(length=500), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        _user_fk("auth_sessions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_sessions_token_hash")),
    )
    op.create_index(op.f("ix_auth_sessions_user_id"), "auth_sessions", ["user_id"])
    op.create_index(op.f("ix_auth_sessions_expires_at"), "auth_sessions", ["expires_at"])
    op.create_table(
        "auth_links",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
        sa.Column("created_by", ID, nullable=True),
        _user_fk("auth_links"),
        _user_fk("auth_links", "created_by", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_links_token_hash")),
    )
    op.create_index(op.f("ix_auth_links_user_id"), "auth_links", ["user_id"])
    op.create_table(
        "auth_failures",
        sa.Column("id", ID, nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_failures")),
    )
    op.create_index("ix_auth_failures_key_at", "auth_failures", ["key", "at"])
    op.create_index(op.f("ix_auth_failures_at"), "auth_failures", ["at"])
    # The tokens in use keep working: each becomes a full-scope API token.
    op.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, scope, origin, created_at) "
        "SELECT id, 'API token', token_hash, 'full', 'migrated', created_at FROM users"
    )
    op.execute("DELETE FROM live_tickets")


def downgrade() -> None:
    op.execute("DELETE FROM live_tickets")
    op.drop_table("auth_failures")
    op.drop_table("auth_links")
    op.drop_table("auth_sessions")
    op.drop_table("api_tokens")
    # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 too): no table rebuild, which would
    # drop the users triggers of 0007_scale_counters.
    op.drop_column("users", "password_hash")
