"""import jobs that survive a restart: the stored upload and options, the last committed
row, a lease (which hub runs the job, until when), dry runs kept apart

Revision ID: 0012_import_jobs
Revises: 0011_tasks_bulk

Adds nullable or defaulted columns to ``import_batches`` only: every row is kept (an
existing batch gets ``params`` ``{}``, ``done_row`` 0, no lease, ``dry_run`` false).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_import_jobs"
down_revision: str | None = "0011_tasks_bulk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params", sa.JSON(), server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("done_row", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("dry_run", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_import_batches_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_batches_status"))
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_owner")
        batch_op.drop_column("dry_run")
        batch_op.drop_column("done_row")
        batch_op.drop_column("params")
