"""SQLAlchemy models of the CRM (DESIGN.md "Central types").  Storage only: services in
``crm_core.services`` and the pipeline in ``crm_core.pipeline`` hold the behaviour."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiToken",
    "AttachmentRow",
    "AuditEntry",
    "AuthFailure",
    "AuthLink",
    "AuthSession",
    "Base",
    "Campaign",
    "CampaignRecipient",
    "Client",
    "ClientStatus",
    "ClientTag",
    "ConnectorStateRow",
    "ContactPerson",
    "ContactPoint",
    "CustomField",
    "Deal",
    "DealItem",
    "DealStageChange",
    "EmailConsent",
    "EmailConsentEvent",
    "Form",
    "ImportBatch",
    "ImportLink",
    "InboxEvent",
    "Interaction",
    "InteractionMonthly",
    "Job",
    "Lead",
    "LeadDaily",
    "LiveEventRow",
    "LiveTicket",
    "LossReason",
    "OutboxCommand",
    "Pipeline",
    "PipelineStage",
    "RoutingCounter",
    "RoutingPointer",
    "RoutingRulesVersion",
    "SalesPlan",
    "Segment",
    "SegmentClient",
    "SegmentManager",
    "Task",
    "User",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on SQLite (naive storage) and PostgreSQL (timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def _fk(target: str, ondelete: str = "SET NULL") -> Any:
    return ForeignKey(target, ondelete=ondelete)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))  # admin | supervisor | manager
    team: Mapped[str | None] = mapped_column(String(100), index=True)
    extension: Mapped[str | None] = mapped_column(String(32), unique=True)
    # The SHA-256 of the token ``users add`` / ``rotate-token`` issued (that token is an
    # ``ApiToken`` now, which is what authenticates); kept as the key that signs
    # recording links.  A user invited without a token holds the hash of a random value.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # argon2id hash (crm_core/services/auth.py); None until the user sets a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    working_hours: Mapped[dict[str, Any]] = mapped_column(default=dict)
    absences: Mapped[list[Any]] = mapped_column(default=list)
    capacity: Mapped[int | None] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    locale: Mapped[str] = mapped_column(String(8), default="ru")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # campaigns (0020): what a campaign template shows as the owner's phone and signature
    phone: Mapped[str | None] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(Text, default="", server_default="")


class Segment(Base):
    """A named group of clients: ``manual`` (chosen clients, in ``segment_clients``) or
    ``rule`` (``rules`` over the profile, evaluated live).  Managers assigned to it are in
    ``segment_managers``; ``strategy`` says how its clients are shared among them."""

    __tablename__ = "segments"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(10), default="manual", server_default="manual")
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    strategy: Mapped[str | None] = mapped_column(String(20))  # round_robin | least_loaded
    created_by: Mapped[int | None] = mapped_column(_fk("users.id"))
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)


class SegmentClient(Base):
    """Membership of a manual segment."""

    __tablename__ = "segment_clients"
    segment_id: Mapped[int] = mapped_column(_fk("segments.id", "CASCADE"), primary_key=True)
    client_id: Mapped[int] = mapped_column(
        _fk("clients.id", "CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class SegmentManager(Base):
    """A manager assigned to a segment (its clients are distributed among them)."""

    __tablename__ = "segment_managers"
    segment_id: Mapped[int] = mapped_column(_fk("segments.id", "CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(_fk("users.id", "CASCADE"), primary_key=True, index=True)


class ClientStatus(Base):
    """The admin-editable list of client statuses (key, Russian and English names, order)."""

    __tablename__ = "client_statuses"
    key: Mapped[str] = mapped_column(String(20), primary_key=True)
    name_ru: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CustomField(Base):
    """An admin-defined field of clients: its value lives in ``clients.custom[key]``.
    ``type``: text | number | date | choice | multi; ``options`` lists the choices."""

    __tablename__ = "custom_fields"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    entity: Mapped[str] = mapped_column(String(20), default="client")
    key: Mapped[str] = mapped_column(String(50))
    label_ru: Mapped[str] = mapped_column(String(200))
    label_en: Mapped[str] = mapped_column(String(200), default="")
    type: Mapped[str] = mapped_column(String(10))
    options: Mapped[list[Any]] = mapped_column(default=list)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("entity", "key"),)


class Client(Base):
    """A company or a person.  A company's branches share its INN with their own KPP, so
    the INN is unique together with the KPP (``''`` for the head office)."""

    __tablename__ = "clients"
    __table_args__ = (
        UniqueConstraint("inn", "kpp"),
        Index("ix_clients_owner_id_id", "owner_id", "id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # company | person
    name: Mapped[str] = mapped_column(String(300))
    full_name: Mapped[str | None] = mapped_column(String(500))  # full legal name
    inn: Mapped[str | None] = mapped_column(String(12))
    kpp: Mapped[str] = mapped_column(String(9), default="", server_default="")
    ogrn: Mapped[str | None] = mapped_column(String(15))
    segment_id: Mapped[int | None] = mapped_column(_fk("segments.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="cold", index=True)
    owner_id: Mapped[int | None] = mapped_column(_fk("users.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(_fk("clients.id"), index=True)
    legal_address: Mapped[str | None] = mapped_column(Text)
    actual_address: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(String(100), index=True)
    region: Mapped[str | None] = mapped_column(String(100), index=True)
    industry: Mapped[str | None] = mapped_column(String(200), index=True)
    activity: Mapped[str | None] = mapped_column(String(300))  # kind of activity (OKVED text)
    headcount: Mapped[int | None] = mapped_column(Integer)
    revenue: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))  # annual, RUB
    website: Mapped[str | None] = mapped_column(String(300))
    birthday: Mapped[date | None] = mapped_column(Date)  # a person's
    source: Mapped[str | None] = mapped_column(String(100))
    custom: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_contact_at: Mapped[datetime | None] = mapped_column(index=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ClientTag(Base):
    __tablename__ = "client_tags"
    client_id: Mapped[int] = mapped_column(_fk("clients.id", "CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class ContactPerson(Base):
    """A contact person of a company; their phones and emails are contact points with
    ``contact_person_id`` set (and the company's ``client_id``)."""

    __tablename__ = "contact_persons"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    client_id: Mapped[int] = mapped_column(_fk("clients.id", "CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    position: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_report", "created_at", "source", "status", "loss_reason"),
        Index("ix_leads_owner_created", "owner_id", "status", "created_at"),
        Index("ix_leads_status_owner", "status", "owner_id"),
        Index("ix_leads_owner_id_id", "owner_id", "id"),
        Index("ix_leads_status_created_reason", "status", "created_at", "loss_reason"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    source: Mapped[str] = mapped_column(String(20), index=True)  # channel
    source_ref: Mapped[str | None] = mapped_column(String(200))  # form key, mailbox, bot, PBX
    title: Mapped[str] = mapped_column(String(300), default="")
    name: Mapped[str | None] = mapped_column(String(300))
    company: Mapped[str | None] = mapped_column(String(300))
    client_id: Mapped[int | None] = mapped_column(_fk("clients.id"), index=True)
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deals.id", ondelete="SET NULL", use_alter=True)
    )
    owner_id: Mapped[int | None] = mapped_column(_fk("users.id"), index=True)
    queue: Mapped[str | None] = mapped_column(String(100), index=True)  # team awaiting someone
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    utm: Mapped[dict[str, Any]] = mapped_column(default=dict)
    loss_reason: Mapped[str | None] = mapped_column(String(300))
    rule_id: Mapped[str | None] = mapped_column(String(100))
    assign_reason: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str | None] = mapped_column(String(20))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    first_event_id: Mapped[int | None] = mapped_column(_fk("inbox_events.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()
    # The first answer to the request: the earliest outbound interaction on the lead or
    # an answered call (kept by database triggers, migration 0009_sales_plans).
    first_response_at: Mapped[datetime | None] = mapped_column()


class ContactPoint(Base):
    """A phone, email, Telegram or VK id; unique across the CRM, owned by one party."""

    __tablename__ = "contact_points"
    __table_args__ = (UniqueConstraint("kind", "value"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(320))
    extension: Mapped[str | None] = mapped_column(String(16))
    client_id: Mapped[int | None] = mapped_column(_fk("clients.id", "CASCADE"), index=True)
    contact_person_id: Mapped[int | None] = mapped_column(_fk("contact_persons.id", "CASCADE"))
    lead_id: Mapped[int | None] = mapped_column(_fk("leads.id", "SET NULL"), index=True)
    label: Mapped[str | None] = mapped_column(String(100))  # display name, username
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    unreachable_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Pipeline(Base):
    """A sales funnel ("B2B — оборудование"): its stages and its loss-reason catalogue."""

    __tablename__ = "pipelines"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    name_en: Mapped[str | None] = mapped_column(String(200))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PipelineStage(Base):
    """A stage of a pipeline.  ``code`` is what ``deals.stage`` holds; every pipeline has
    one ``won`` and one ``lost`` stage (kinds ``won``/``lost``, codes ``won``/``lost``)."""

    __tablename__ = "pipeline_stages"
    __table_args__ = (UniqueConstraint("pipeline_id", "code"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(_fk("pipelines.id", "CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    probability: Mapped[int] = mapped_column(Integer, default=0)  # percent
    kind: Mapped[str] = mapped_column(String(10), default="open")  # open | won | lost
    required_fields: Mapped[list[Any]] = mapped_column(default=list)


class LossReason(Base):
    """An entry of a pipeline's loss-reason catalogue; archived, never deleted once used."""

    __tablename__ = "loss_reasons"
    __table_args__ = (UniqueConstraint("pipeline_id", "name"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(_fk("pipelines.id", "CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    name_en: Mapped[str | None] = mapped_column(String(300))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_owner_created", "owner_id", "created_at"),
        Index("ix_deals_pipeline_stage", "pipeline_id", "stage", "id"),
        Index("ix_deals_pipeline_created", "pipeline_id", "created_at"),
        Index("ix_deals_owner_id_id", "owner_id", "id"),
        Index("ix_deals_stage_owner_closed", "stage", "owner_id", "closed_at", "amount"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    client_id: Mapped[int] = mapped_column(_fk("clients.id", "CASCADE"), index=True)
    lead_id: Mapped[int | None] = mapped_column(_fk("leads.id", "SET NULL"))
    title: Mapped[str] = mapped_column(String(300))
    stage: Mapped[str] = mapped_column(String(30), default="new", index=True)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    owner_id: Mapped[int | None] = mapped_column(_fk("users.id"), index=True)
    loss_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()
    # NULL only on rows written around the services (raw loaders): read as the default.
    pipeline_id: Mapped[int | None] = mapped_column(_fk("pipelines.id", "RESTRICT"))
    loss_reason_id: Mapped[int | None] = mapped_column(_fk("loss_reasons.id"))
    loss_comment: Mapped[str | None] = mapped_column(Text)


class DealItem(Base):
    """A line of a deal: quantity x price less a discount (percent); their sum is the
    deal's amount."""

    __tablename__ = "deal_items"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    deal_id: Mapped[int] = mapped_column(_fk("deals.id", "CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    unit: Mapped[str] = mapped_column(String(20), default="шт")
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    discount: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))


class DealStageChange(Base):
    __tablename__ = "deal_stage_changes"
    __table_args__ = (
        Index("ix_deal_stage_changes_path", "deal_id", "to_stage", "from_stage", "at", "id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    deal_id: Mapped[int] = mapped_column(_fk("deals.id", "CASCADE"), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(30))
    to_stage: Mapped[str] = mapped_column(String(30))
    user_id: Mapped[int | None] = mapped_column(_fk("users.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class InboxEvent(Base):
    """The durable inbox: every accepted event, unique per (channel, kind, external_id)."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("channel", "kind", "external_id"),
        Index("ix_inbox_due", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(500))
    source: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    processed_at: Mapped[datetime | None] = mapped_column()
    lead_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    client_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    interaction_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite")
    )


class Interaction(Base):
    """One entry on a timeline: a call, an email, a message, a form submission."""

    __tablename__ = "interactions"
    __table_args__ = (
        Index(
            "uq_interactions_channel_message_key",
            "channel",
            "message_key",
            unique=True,
            sqlite_where=text("message_key IS NOT NULL"),
            postgresql_where=text("message_key IS NOT NULL"),
        ),
        Index(
            "ix_interactions_user_activity",
            "user_id",
            "occurred_at",
            "channel",
            "direction",
            "outcome",
        ),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    client_id: Mapped[int | None] = mapped_column(_fk("clients.id", "CASCADE"), index=True)
    lead_id: Mapped[int | None] = mapped_column(_fk("leads.id", "SET NULL"), index=True)
    deal_id: Mapped[int | None] = mapped_column(_fk("deals.id", "SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    kind: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(20))
    classification: Mapped[str] = mapped_column(String(20), default="regular")
    duration_s: Mapped[int | None] = mapped_column(Integer)
    ring_s: Mapped[int | None] = mapped_column(Integer)
    recording_url: Mapped[str | None] = mapped_column(String(1000))
    recording_file: Mapped[str | None] = mapped_column(String(1000))  # MixMonitor's, on the PBX
    subject: Mapped[str | None] = mapped_column(String(1000))
    body: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    thread_id: Mapped[str | None] = mapped_column(String(500), index=True)
    message_key: Mapped[str | None] = mapped_column(String(500))
    user_id: Mapped[int | None] = mapped_column(_fk("users.id"))
    event_id: Mapped[int | None] = mapped_column(_fk("inbox_events.id"), unique=True)
    outbox_id: Mapped[int | None] = mapped_column(_fk("outbox.id"), unique=True)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InteractionMonthly(Base):
    """Interactions per handling user, UTC month, channel, direction and outcome (``""``
    for none): the manager-activity report reads this instead of the interactions.  Kept by
    database triggers on ``interactions`` (migration 0004_scale), in the same
    transaction as the interaction itself; only rows with a ``user_id`` are counted."""

    __tablename__ = "interaction_monthly"
    user_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM (UTC)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    direction: Mapped[str] = mapped_column(String(3), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(20), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    talk_s: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # duration_s


class AttachmentRow(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(_fk("interactions.id", "CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    path: Mapped[str | None] = mapped_column(String(1000))
    url: Mapped[str | None] = mapped_column(String(1000))


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_due", "status", "remind_at"),
        Index("ix_tasks_due_order", "due_at", "id"),
        Index("ix_tasks_assignee_due_order", "assignee_id", "due_at", "id"),
        Index("ix_tasks_assignee_created", "assignee_id", "status", "created_at"),
        Index("ix_tasks_status_assignee", "status", "assignee_id"),
        Index("ix_tasks_status_due_order", "status", "due_at", "id"),
        Index("ix_tasks_status_assignee_due", "status", "assignee_id", "due_at", "id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))  # call_back, send_offer, ...
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    due_at: Mapped[datetime | None] = mapped_column()
    remind_at: Mapped[datetime | None] = mapped_column()
    reminded_at: Mapped[datetime | None] = mapped_column()
    sla_due_at: Mapped[datetime | None] = mapped_column()
    sla_warned_at: Mapped[datetime | None] = mapped_column()
    escalated_at: Mapped[datetime | None] = mapped_column()
    assignee_id: Mapped[int | None] = mapped_column(_fk("users.id"), index=True)
    client_id: Mapped[int | None] = mapped_column(_fk("clients.id", "CASCADE"), index=True)
    lead_id: Mapped[int | None] = mapped_column(_fk("leads.id", "SET NULL"), index=True)
    deal_id: Mapped[int | None] = mapped_column(_fk("deals.id", "SET NULL"), index=True)
    interaction_id: Mapped[int | None] = mapped_column(ID)  # no FK: avoids a cycle
    created_by: Mapped[int | None] = mapped_column(_fk("users.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str | None] = mapped_column(Text)  # what came of it, recorded when done
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()


class Job(Base):
    """A background job (today: a mass operation on clients, ``kind='bulk'``).

    Queued by the API (unique per user and ``Idempotency-Key``), claimed by one runner
    (``locked_by`` / ``locked_until``, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), done in
    batches: each batch commits its changes together with ``cursor`` (the last client id
    handled), the counters and ``state``, so a restart resumes after the last batch."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_jobs_claim", "status", "locked_until"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="bulk")
    action: Mapped[str] = mapped_column(String(20))  # tasks | owner | status | tags | segment
    user_id: Mapped[int | None] = mapped_column(_fk("users.id"), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64), default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    selection: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued|running|done|failed
    total: Mapped[int | None] = mapped_column(Integer)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cursor: Mapped[int | None] = mapped_column(BigInteger)
    max_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxCommand(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_client_id", "client_id"),  # merging clients (0014_merge)
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(_fk("users.id"))
    client_id: Mapped[int | None] = mapped_column(_fk("clients.id", "SET NULL"))
    lead_id: Mapped[int | None] = mapped_column(_fk("leads.id", "SET NULL"))
    deal_id: Mapped[int | None] = mapped_column(_fk("deals.id", "SET NULL"))
    task_id: Mapped[int | None] = mapped_column(_fk("tasks.id", "SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class Form(Base):
    __tablename__ = "forms"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    secret: Mapped[str] = mapped_column(String(128))
    aliases: Mapped[dict[str, Any]] = mapped_column(default=dict)
    honeypot_fields: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoutingPointer(Base):
    """Round-robin pointers, updated in the assignment's own transaction."""

    __tablename__ = "routing_pointers"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_user_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoutingRulesVersion(Base):
    """Every version of the routing rules: the newest is in force in every hub process.
    ``source``: ``api`` (PUT /rules), ``file`` (the rules file at the first start, or
    edited on disk), ``restore`` (an older version made current again)."""

    __tablename__ = "routing_rules_versions"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(10))
    created_by: Mapped[int | None] = mapped_column(_fk("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoutingCounter(Base):
    """``load:<user id>``: the user's open leads (new, in progress) plus open tasks;
    ``users``: bumped by every change to ``users``.  Kept by database triggers on leads,
    tasks and users (migration 0007_scale_counters) in the writer's own transaction."""

    __tablename__ = "routing_counters"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class ConnectorStateRow(Base):
    __tablename__ = "connector_state"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SalesPlan(Base):
    """A sales plan of one manager (``user_id``) or one team (``team``) for a month
    (``2026-12``) or a quarter (``2026-Q4``); ``subject`` is ``user:<id>`` or
    ``team:<name>``, unique per period.  A figure left empty is not planned."""

    __tablename__ = "sales_plans"
    __table_args__ = (UniqueConstraint("period", "subject"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    period: Mapped[str] = mapped_column(String(7))
    subject: Mapped[str] = mapped_column(String(120))
    user_id: Mapped[int | None] = mapped_column(_fk("users.id", "CASCADE"), index=True)
    team: Mapped[str | None] = mapped_column(String(100))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    deals: Mapped[int | None] = mapped_column(Integer)
    calls: Mapped[int | None] = mapped_column(Integer)
    meetings: Mapped[int | None] = mapped_column(Integer)
    updated_by: Mapped[int | None] = mapped_column(_fk("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_entity", "entity", "entity_id", "at"),
        Index("ix_audit_entries_user_at", "user_id", "at"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(_fk("users.id"))
    action: Mapped[str] = mapped_column(String(100))
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LiveEventRow(Base):
    """A live event published on PostgreSQL for the other hub processes: NOTIFY carries
    only its id; a process fetches the rows it has not seen (also after a reconnect, so a
    missed notification is caught up).  Kept for an hour."""

    __tablename__ = "live_events"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    node: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column()
    user_ids: Mapped[list[Any] | None] = mapped_column(JSON)
    owner_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LiveTicket(Base):
    """A single-use ticket that opens one live stream (``/live``, ``/live/sse``) without
    the API token in the URL.  Only its SHA-256 is stored; ``token_hash`` holds the
    credential it was issued for (``t:<api token id>`` or ``s:<session id>``), so
    revoking the token or ending the session voids it."""

    __tablename__ = "live_tickets"
    ticket_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(_fk("users.id", "CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ImportBatch(Base):
    """One import of a file: its report, and (in ``ImportLink``) what it created or added."""

    __tablename__ = "import_batches"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="clients")
    file_name: Mapped[str] = mapped_column(String(300), default="")
    # queued | running | done | failed | undone
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    user_id: Mapped[int | None] = mapped_column(_fk("users.id"))
    rows: Mapped[int] = mapped_column(Integer, default=0)  # processed so far (progress)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    undone_at: Mapped[datetime | None] = mapped_column()
    # A job (API, browser): the stored file and how to read it; the last row committed
    # (a restarted job goes on after it); which hub runs it and until when (its lease).
    params: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    done_row: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column()


class ImportLink(Base):
    """A row an import created (``created``), took over (``claimed``: a lead's contact
    point) or a field it filled (``filled``: ``field`` and ``value``)."""

    __tablename__ = "import_links"
    __table_args__ = (Index("ix_import_links_entity", "entity", "entity_id"),)  # 0014_merge
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    batch_id: Mapped[int] = mapped_column(_fk("import_batches.id", "CASCADE"), index=True)
    entity: Mapped[str] = mapped_column(String(20))  # client | contact_person | contact_point
    entity_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(10))
    field: Mapped[str | None] = mapped_column(String(50))
    value: Mapped[Any | None] = mapped_column(JSON)


# --- sign-in: passwords, sessions, invitation/reset links, API tokens (0018_auth) ---


class ApiToken(Base):
    """A personal access token for an integration: only its SHA-256 is stored.
    ``scope`` read (GET/HEAD only) or full (everything the user may do); ``origin``
    user (made in the profile/API), admin (``users add``, ``rotate-token``) or migrated
    (the ``users.token_hash`` of a user created before 0018)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    user_id: Mapped[int] = mapped_column(_fk("users.id", "CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(10), default="full")
    origin: Mapped[str] = mapped_column(String(10), default="user")
    expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class AuthSession(Base):
    """A browser's sign-in: the cookie's SHA-256, its CSRF token, where it came from.
    Ended sessions are deleted (the audit log keeps the record)."""

    __tablename__ = "auth_sessions"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    user_id: Mapped[int] = mapped_column(_fk("users.id", "CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(200), default="")
    user_agent: Mapped[str] = mapped_column(String(500), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)  # the absolute lifetime


class AuthLink(Base):
    """A single-use link to set a password (``invite``) or reset it (``reset``): only
    the SHA-256 of its token is stored; ``used_at`` once redeemed."""

    __tablename__ = "auth_links"
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    user_id: Mapped[int] = mapped_column(_fk("users.id", "CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    created_by: Mapped[int | None] = mapped_column(_fk("users.id"))


class AuthFailure(Base):
    """A failed sign-in, keyed ``email:<address>`` or ``ip:<address>``: the rate limit
    counts them over the last minute (shared by every hub process)."""

    __tablename__ = "auth_failures"
    __table_args__ = (Index("ix_auth_failures_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(400))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# --- Two-factor sign-in (issue 16, TOTP): secrets, recovery codes, sign-in challenges ---


class TwoFactor(Base):
    """A user's TOTP secret (base32; the authenticator app holds the same).  Enrolling
    (``enabled_at`` null) until the first code is confirmed.  ``last_step`` is the last
    accepted 30-second step: a code is never accepted twice."""

    __tablename__ = "two_factor"
    user_id: Mapped[int] = mapped_column(_fk("users.id", "CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))
    enabled_at: Mapped[datetime | None] = mapped_column()
    last_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TwoFactorRecoveryCode(Base):
    """One unused recovery code of a user (only its SHA-256); deleted when used."""

    __tablename__ = "two_factor_recovery_codes"
    user_id: Mapped[int] = mapped_column(_fk("users.id", "CASCADE"), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)


class TwoFactorChallenge(Base):
    """The short-lived, single-use handle between the password step and the second step
    of a sign-in (``verify``: a code; ``setup``: enrolment forced by the user's role).
    Only its SHA-256 is stored; ``failures`` wrong codes void it at the limit."""

    __tablename__ = "two_factor_challenges"
    challenge_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(_fk("users.id", "CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(index=True)


# -- campaigns (0020_campaigns) ---------------------------------------------------------


class Campaign(Base):
    """A mass email to an audience (segments, a list filter or chosen clients, minus
    exclusions, all in ``audience``).  ``status``: draft | scheduled | sending | paused |
    cancelled | done.  Run by ``crm_core.campaigns.CampaignRunner`` like a job: claimed
    with a lease (``locked_by`` / ``locked_until``), the recipient list written once
    (``materialized``), then one outbox command per recipient."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_claim", "status", "locked_until"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default="draft", index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[dict[str, Any]] = mapped_column(default=dict)
    smtp_account: Mapped[str] = mapped_column(String(100), default="default")
    send_at: Mapped[datetime | None] = mapped_column()
    created_by: Mapped[int | None] = mapped_column(_fk("users.id"), index=True)
    started_by: Mapped[int | None] = mapped_column(_fk("users.id"))
    materialized: Mapped[bool] = mapped_column(Boolean, default=False)
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class CampaignRecipient(Base):
    """One address of a campaign: ``status`` pending | sending | sent | failed | bounced |
    unsubscribed | replied | suppressed | unknown (the SMTP transaction was in flight when
    the sending process died: a person decides, nothing is resent blindly).  Its outbox
    command (``outbox_id``, key ``campaign:<campaign>:<recipient>``; the timeline entry
    of a sent message has the same ``outbox_id``) and Message-ID (``message_id``, without
    ``<>``) are kept so replies and bounces find it."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "email"),
        Index("ix_campaign_recipients_status", "campaign_id", "status", "id"),
    )
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(_fk("campaigns.id", "CASCADE"))
    client_id: Mapped[int | None] = mapped_column(_fk("clients.id", "SET NULL"), index=True)
    contact_person_id: Mapped[int | None] = mapped_column(_fk("contact_persons.id", "SET NULL"))
    email: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    outbox_id: Mapped[int | None] = mapped_column(_fk("outbox.id", "SET NULL"))
    message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# The outbox of campaign messages is large: every worker asks it by channel first.
Index(
    "ix_outbox_channel_due",
    OutboxCommand.channel,
    OutboxCommand.status,
    OutboxCommand.next_attempt_at,
)


# --- Email consent (issue 14, campaigns): migration 0021_consent ----------------------


class EmailConsent(Base):
    """The consent state of one email address (normalized, lower-case): ``granted``,
    ``withdrawn``, ``unsubscribed``, ``bounced`` or ``complained``.  No row: nothing
    recorded (unknown).  The address's client is found through its contact point."""

    __tablename__ = "email_consent"
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(50))
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_by: Mapped[int | None] = mapped_column(_fk("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EmailConsentEvent(Base):
    """One change of an address's consent: who (``user_id``, none for the address's own
    unsubscribe or a mail server's report), what (``state`` after, ``previous_state``),
    when, from where (``source``) and for which campaign."""

    __tablename__ = "email_consent_events"
    __table_args__ = (Index("ix_email_consent_events_email_at", "email", "at"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(20))
    previous_state: Mapped[str | None] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(50))
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(_fk("users.id"))
    note: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(default=utcnow)


# --- requests per day (issue 11: migration 0024_lead_daily) -----------------------------


class LeadDaily(Base):
    """Leads per UTC day (``YYYY-MM-DD``) and source: ``refused = 0, reason = ''`` counts
    every lead (``converted``: those converted now), ``refused = 1`` the rejected ones per
    loss reason (``''`` for none).  Kept by database triggers on ``leads`` in the same
    transaction as the lead; the requests report reads whole days from here."""

    __tablename__ = "lead_daily"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    refused: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(String(300), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    converted: Mapped[int] = mapped_column(Integer, default=0)
