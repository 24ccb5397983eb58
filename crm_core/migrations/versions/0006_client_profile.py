"""client base: business profile, statuses list, tags, custom fields, contact persons'
notes, segments (manual members, rules, managers)

Revision ID: 0006_client_profile
Revises: 0005_imports

Every existing row is kept:
- ``clients`` gains the profile columns (all nullable or with a constant default, so
  PostgreSQL adds them without rewriting the table).  The INN becomes unique together
  with the new KPP (``''`` for a head office), so a company's branches can share it.
  SQLite cannot drop a constraint in place: the table is rebuilt (Alembic batch mode)
  with foreign keys off (``crm_core.db.migrate``), its FTS triggers re-created, and
  ``PRAGMA foreign_key_check`` must come back empty before the commit.
- the old fixed statuses become keys of the new editable list: ``warm`` -> ``thinking``,
  ``hot`` -> ``ready``, ``permanent`` -> ``regular``; ``cold``, ``active`` and ``lost``
  stay.
- each client's ``segment_id`` becomes a membership of that (manual) segment.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_client_profile"
down_revision: str | None = "0005_imports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)

STATUSES = (
    ("cold", "Холодный", "Cold", 10),
    ("thinking", "Думает", "Thinking", 20),
    ("ready", "Готов купить", "Ready to buy", 30),
    ("active", "Активный", "Active", 40),
    ("regular", "Постоянный", "Regular", 50),
    ("lost", "Потерян", "Lost", 60),
)
RENAMED = (("warm", "thinking"), ("hot", "ready"), ("permanent", "regular"))

# (name, columns) of the plain indexes on clients added here
CLIENT_INDEXES = (
    ("ix_clients_status", ("status",)),
    ("ix_clients_parent_id", ("parent_id",)),
    ("ix_clients_city", ("city",)),
    ("ix_clients_region", ("region",)),
    ("ix_clients_industry", ("industry",)),
    ("ix_clients_last_contact_at", ("last_contact_at",)),
)


def _profile_columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("full_name", sa.String(length=500), nullable=True),
        sa.Column("kpp", sa.String(length=9), server_default="", nullable=False),
        sa.Column("ogrn", sa.String(length=15), nullable=True),
        sa.Column("parent_id", _ID, nullable=True),
        sa.Column("legal_address", sa.Text(), nullable=True),
        sa.Column("actual_address", sa.Text(), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("industry", sa.String(length=200), nullable=True),
        sa.Column("activity", sa.String(length=300), nullable=True),
        sa.Column("headcount", sa.Integer(), nullable=True),
        sa.Column("revenue", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("website", sa.String(length=300), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("custom", sa.JSON(), server_default="{}", nullable=False),
        sa.Column("last_contact_at", _TS, nullable=True),
    )


def _new_tables() -> None:
    op.create_table(
        "client_statuses",
        sa.Column("key", sa.String(length=20), nullable=False),
        sa.Column("name_ru", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_client_statuses")),
    )
    statuses = sa.table(
        "client_statuses",
        sa.column("key"),
        sa.column("name_ru"),
        sa.column("name_en"),
        sa.column("position"),
        sa.column("active"),
    )
    op.bulk_insert(
        statuses,
        [
            {"key": k, "name_ru": ru, "name_en": en, "position": pos, "active": True}
            for k, ru, en, pos in STATUSES
        ],
    )
    op.create_table(
        "custom_fields",
        sa.Column("id", _ID, nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("label_ru", sa.String(length=200), nullable=False),
        sa.Column("label_en", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=10), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_fields")),
        sa.UniqueConstraint("entity", "key", name=op.f("uq_custom_fields_entity_key")),
    )
    op.create_table(
        "client_tags",
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_tags_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "tag", name=op.f("pk_client_tags")),
    )
    op.create_index(op.f("ix_client_tags_tag"), "client_tags", ["tag"], unique=False)
    op.create_table(
        "segment_clients",
        sa.Column("segment_id", _ID, nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("added_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_segment_clients_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_clients_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("segment_id", "client_id", name=op.f("pk_segment_clients")),
    )
    op.create_index(
        op.f("ix_segment_clients_client_id"), "segment_clients", ["client_id"], unique=False
    )
    op.create_table(
        "segment_managers",
        sa.Column("segment_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_managers_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_segment_managers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("segment_id", "user_id", name=op.f("pk_segment_managers")),
    )
    op.create_index(
        op.f("ix_segment_managers_user_id"), "segment_managers", ["user_id"], unique=False
    )


def _segments_and_persons() -> None:
    with op.batch_alter_table("segments", schema=None) as b:
        b.add_column(
            sa.Column("kind", sa.String(length=10), server_default="manual", nullable=False)
        )
        b.add_column(sa.Column("rules", sa.JSON(), nullable=True))
        b.add_column(sa.Column("strategy", sa.String(length=20), nullable=True))
        b.add_column(sa.Column("created_by", _ID, nullable=True))
        b.add_column(sa.Column("created_at", _TS, nullable=True))
        b.add_column(sa.Column("updated_at", _TS, nullable=True))
        b.create_foreign_key(
            op.f("fk_segments_created_by_users"),
            "users",
            ["created_by"],
            ["id"],
            ondelete="SET NULL",
        )
    # plain ADD COLUMN (no rebuild) on both databases
    op.add_column(
        "contact_persons", sa.Column("notes", sa.Text(), server_default="", nullable=False)
    )
    op.add_column(
        "contact_persons",
        sa.Column("is_primary", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def _data() -> None:
    for old, new in RENAMED:
        op.execute(f"UPDATE clients SET status = '{new}' WHERE status = '{old}'")
    op.execute(
        "INSERT INTO segment_clients (segment_id, client_id, added_at) "
        "SELECT segment_id, id, created_at FROM clients WHERE segment_id IS NOT NULL"
    )


def _fts_triggers() -> None:
    """A rebuild of a table drops its name-search triggers (0004_scale); the FTS rows are
    keyed by the unchanged ids, so only the triggers come back."""
    for table in ("clients", "contact_persons"):
        fts = f"{table}_fts"
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS {fts}_ai AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {fts}(rowid, name) VALUES (new.id, new.name); END"
        )
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS {fts}_ad AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, name) VALUES ('delete', old.id, old.name); END"
        )
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS {fts}_au AFTER UPDATE OF name ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, name) VALUES ('delete', old.id, old.name); "
            f"INSERT INTO {fts}(rowid, name) VALUES (new.id, new.name); END"
        )


def _sqlite_clients() -> None:
    with op.batch_alter_table("clients", schema=None, recreate="always") as b:
        for col in _profile_columns():
            b.add_column(col)
        b.drop_constraint("uq_clients_inn", type_="unique")
        b.create_unique_constraint(op.f("uq_clients_inn_kpp"), ["inn", "kpp"])
        b.create_foreign_key(
            op.f("fk_clients_parent_id_clients"),
            "clients",
            ["parent_id"],
            ["id"],
            ondelete="SET NULL",
        )
    for name, cols in CLIENT_INDEXES:
        op.create_index(name, "clients", list(cols), unique=False, if_not_exists=True)
    _fts_triggers()
    broken = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"foreign keys broken by the clients rebuild: {broken[:5]}")


def _pg_clients(bind: sa.Connection) -> None:
    for col in _profile_columns():
        op.add_column("clients", col)
    op.create_foreign_key(
        op.f("fk_clients_parent_id_clients"),
        "clients",
        "clients",
        ["parent_id"],
        ["id"],
        ondelete="SET NULL",
    )
    # the indexes are built CONCURRENTLY after this transaction (see 0004_scale._pg_online)
    level = bind.default_isolation_level or "READ COMMITTED"
    bind.commit()
    bind.execution_options(isolation_level="AUTOCOMMIT")
    try:
        for name, cols in CLIENT_INDEXES:
            _pg_index(bind, name, f"clients ({', '.join(cols)})")
        _pg_index(bind, "uq_clients_inn_kpp", "clients (inn, kpp)", unique=True)
        bind.exec_driver_sql("ALTER TABLE clients DROP CONSTRAINT IF EXISTS uq_clients_inn")
        bind.exec_driver_sql(
            "ALTER TABLE clients ADD CONSTRAINT uq_clients_inn_kpp UNIQUE "
            "USING INDEX uq_clients_inn_kpp"
        )
    finally:
        if bind.in_transaction():
            bind.commit()
        bind.execution_options(isolation_level=level)


def _pg_index(bind: sa.Connection, name: str, target: str, *, unique: bool = False) -> None:
    invalid = bind.exec_driver_sql(
        "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        f"WHERE c.relname = '{name}' AND NOT i.indisvalid"
    ).first()
    if invalid:
        bind.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    kind = "UNIQUE INDEX" if unique else "INDEX"
    bind.exec_driver_sql(f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {name} ON {target}")


def upgrade() -> None:
    bind = op.get_bind()
    _new_tables()
    _segments_and_persons()
    _data()
    if bind.dialect.name == "postgresql":
        _pg_clients(bind)
    else:
        _sqlite_clients()


def downgrade() -> None:
    bind = op.get_bind()
    for old, new in RENAMED:
        op.execute(f"UPDATE clients SET status = '{old}' WHERE status = '{new}'")
    if bind.dialect.name == "postgresql":
        op.drop_constraint("uq_clients_inn_kpp", "clients", type_="unique")
        op.create_unique_constraint("uq_clients_inn", "clients", ["inn"])
        for name, _cols in CLIENT_INDEXES:
            op.drop_index(name, table_name="clients", if_exists=True)
        op.drop_constraint("fk_clients_parent_id_clients", "clients", type_="foreignkey")
        for col in _profile_columns():
            op.drop_column("clients", col.name)
    else:
        for name, _cols in CLIENT_INDEXES:
            op.drop_index(name, table_name="clients", if_exists=True)
        with op.batch_alter_table("clients", schema=None, recreate="always") as b:
            b.drop_constraint("uq_clients_inn_kpp", type_="unique")
            b.drop_constraint("fk_clients_parent_id_clients", type_="foreignkey")
            for col in _profile_columns():
                b.drop_column(col.name)
            b.create_unique_constraint("uq_clients_inn", ["inn"])
        _fts_triggers()
    with op.batch_alter_table("contact_persons", schema=None) as b:
        b.drop_column("is_primary")
        b.drop_column("notes")
    if bind.dialect.name == "sqlite":
        _fts_triggers()
    with op.batch_alter_table("segments", schema=None) as b:
        b.drop_constraint("fk_segments_created_by_users", type_="foreignkey")
        for name in ("updated_at", "created_at", "created_by", "strategy", "rules", "kind"):
            b.drop_column(name)
    op.drop_table("segment_managers")
    op.drop_table("segment_clients")
    op.drop_table("client_tags")
    op.drop_table("custom_fields")
    op.drop_table("client_statuses")
