"""indexes for merging duplicate clients: import links by entity, outbox by client

A merge moves every row that points at the duplicate to the kept client.  Most of those
columns are indexed already; ``import_links (entity, entity_id)`` and
``outbox.client_id`` were not, so a merge scanned both tables.  Indexes only: no row
changes, on SQLite and PostgreSQL alike.

Revision ID: 0014_merge
Revises: 0012_import_jobs
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_merge"
down_revision: str | None = "0012_import_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_import_links_entity", "import_links", ["entity", "entity_id"])
    op.create_index("ix_outbox_client_id", "outbox", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_client_id", table_name="outbox")
    op.drop_index("ix_import_links_entity", table_name="import_links")
