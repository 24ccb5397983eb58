"""Request models of the REST API (pydantic); unknown fields are refused by name."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NaiveDatetime,
    ValidationInfo,
    field_validator,
)

from crm_core.services.common import MAX_LIMIT, ListFilter

__all__ = [
    "BoardQuery",
    "ClientCreate",
    "ClientListQuery",
    "ClientPatch",
    "ContactCreate",
    "ContactPatch",
    "CustomFieldCreate",
    "CustomFieldPatch",
    "DealCreate",
    "DealItemIn",
    "DealListQuery",
    "DealLose",
    "DealPatch",
    "DealReopen",
    "DealStageMove",
    "Empty",
    "LeadConvert",
    "LeadCreate",
    "LeadListQuery",
    "LeadPatch",
    "LeadReject",
    "ListQuery",
    "PageQuery",
    "PipelineCreate",
    "PipelinePatch",
    "StatusCreate",
    "StatusPatch",
    "TaskCreate",
    "TaskDone",
    "TaskListQuery",
    "TaskPatch",
    "TaskReassign",
    "TaskSnooze",
    "TimelineQuery",
]

Name = Annotated[str, Field(min_length=1, max_length=300)]
Phones = Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=20)]
Emails = Annotated[list[Annotated[str, Field(max_length=320)]], Field(max_length=20)]
MAX_BIGINT = 2**63 - 1  # ids are BIGINT (PostgreSQL) / INTEGER (SQLite): 64-bit signed
Id = Annotated[int, Field(ge=1, le=MAX_BIGINT)]
ClientKind = Literal["company", "person"]
# A key of the admin-editable client_statuses list (checked by the service).
ClientStatus = Annotated[str, Field(min_length=1, max_length=20)]
TaskKind = Literal[
    "call_back",
    "send_offer",
    "offer_discount",
    "check_payment",
    "send_documents",
    "meeting",
    "other",
]
# A stage code of the deal's pipeline (GET /pipelines); the default one has new,
# qualification, proposal, negotiation, contract, won, lost.
Stage = Annotated[str, Field(min_length=1, max_length=30, pattern=r"^[a-z][a-z0-9_]*$")]
Amount = Annotated[Decimal, Field(ge=0, lt=Decimal("1e12"), decimal_places=2)]
Revenue = Annotated[Decimal, Field(ge=0, lt=Decimal("1e16"), allow_inf_nan=False)]
Tags = Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=50)]
# Values of custom fields by key (checked against their definitions by the service).
Custom = Annotated[dict[str, Any], Field(max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _no_nul(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL (``\\x00``): refused here, naming the field."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            raise ValueError("must not contain the NUL character")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


class Texts(Strict):
    """A body whose strings (also inside lists and objects) are stored as text."""

    _nul = field_validator("*", mode="before")(_no_nul)


class Empty(Strict):
    """No fields."""


def _moment(value: str | None, *, end: bool) -> datetime | None:
    """An ISO date or datetime; a bare date ``created_to`` includes that whole day."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time(), tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):  # OverflowError: the day after 9999-12-31
        raise ValueError("expected an ISO date (2026-01-31) or datetime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_moment(value: str | None, info: ValidationInfo) -> str | None:
    _moment(value, end=info.field_name == "created_to")
    return value


class PageQuery(Strict):
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_BIGINT)
    after: str | None = Field(
        None, max_length=100, description="keyset cursor: the next_after of the previous page"
    )

    def to_filter(self) -> ListFilter:
        return ListFilter(limit=self.limit, offset=self.offset, after=self.after or None)


class ListQuery(PageQuery):
    phone: str | None = Field(None, max_length=200, description="any spelling; normalized")
    email: str | None = Field(None, max_length=320)
    owner_id: Id | None = None
    status: str | None = Field(None, max_length=30)
    created_from: str | None = Field(None, description="ISO date or datetime, inclusive")
    created_to: str | None = Field(None, description="ISO date (whole day) or datetime")
    q: str | None = Field(
        None,
        max_length=200,
        description="search: a name fragment, INN, phone (any spelling), email or contact name",
    )

    _iso = field_validator("created_from", "created_to")(_check_moment)

    def extras(self) -> dict[str, Any]:
        base = set(ListQuery.model_fields)
        return {k: v for k, v in self.model_dump().items() if k not in base and v is not None}

    def to_filter(self) -> ListFilter:
        return ListFilter(
            limit=self.limit,
            offset=self.offset,
            phone=self.phone or None,
            email=self.email or None,
            owner_id=self.owner_id,
            status=self.status or None,
            created_from=_moment(self.created_from, end=False),
            created_to=_moment(self.created_to, end=True),
            q=self.q or None,
            extra=self.extras(),
            after=self.after or None,
        )


class ClientListQuery(ListQuery):
    """Filters on the profile (each one narrows the list) and ``sort``.  Custom fields
    filter as ``cf.<key>=value`` (text: contains; number and date: a value or a range
    ``a..b``; choice: equals; multi: contains), handled beside this model."""

    kind: ClientKind | None = None
    segment: Id | None = Field(None, description="only the clients in this segment")
    city: str | None = Field(None, max_length=100)
    region: str | None = Field(None, max_length=100)
    industry: str | None = Field(None, max_length=200)
    source: str | None = Field(None, max_length=100)
    tag: str | None = Field(None, max_length=100)
    parent_id: Id | None = Field(None, description="the branches of this company")
    headcount_min: int | None = Field(None, ge=0, le=10**9)
    headcount_max: int | None = Field(None, ge=0, le=10**9)
    revenue_min: Revenue | None = None
    revenue_max: Revenue | None = None
    sort: str | None = Field(
        None,
        max_length=30,
        pattern=r"^-?[a-z_]+$",
        description="name, created_at, updated_at, status, city, region, industry, headcount, "
        "revenue, last_contact_at, inn, id; -key for descending (default -id: newest first)",
    )
    after: str | None = Field(
        None, max_length=1000, description="keyset cursor: the next_after of the previous page"
    )

    _nul = field_validator("*", mode="before")(_no_nul)

    def extras(self) -> dict[str, Any]:
        out = super().extras()
        out.pop("after", None)
        return out


class LeadListQuery(ListQuery):
    source: str | None = Field(None, max_length=20)
    queue: str | None = Field(None, max_length=100)
    needs_review: bool | None = None


class DealListQuery(ListQuery):
    client_id: Id | None = None
    pipeline_id: Id | None = None
    segment_id: Id | None = None
    amount_min: Amount | None = None
    amount_max: Amount | None = None


class BoardQuery(DealListQuery):
    per_stage: int = Field(50, ge=1, le=200, description="deals shown per stage")


class TaskListQuery(ListQuery):
    assignee_id: Id | None = None
    due_before: AwareDatetime | None = None
    due_from: AwareDatetime | None = None
    due: Literal["today", "week", "overdue"] | None = Field(
        None, description="today / this week (Monday-Sunday) in your time zone; overdue"
    )
    client_id: Id | None = None
    lead_id: Id | None = None
    deal_id: Id | None = None
    kind: str | None = Field(None, max_length=30)


class TimelineQuery(PageQuery):
    channel: str | None = Field(None, max_length=20)
    created_from: str | None = Field(None, description="ISO date or datetime, inclusive")
    created_to: str | None = Field(None, description="ISO date (whole day) or datetime")

    _iso = field_validator("created_from", "created_to")(_check_moment)

    def to_filter(self) -> ListFilter:
        return ListFilter(
            limit=self.limit,
            offset=self.offset,
            created_from=_moment(self.created_from, end=False),
            created_to=_moment(self.created_to, end=True),
            extra={"channel": self.channel} if self.channel else {},
            after=self.after or None,
        )


class ClientProfile(Texts):
    """The business profile, shared by create and change (null clears a field)."""

    full_name: str | None = Field(None, max_length=500, description="full legal name")
    inn: str | None = Field(None, max_length=20, description="10 or 12 digits, checksummed")
    kpp: str | None = Field(
        None, max_length=20, description="9 characters; empty for the head office"
    )
    ogrn: str | None = Field(None, max_length=20, description="OGRN (13) or OGRNIP (15)")
    parent_id: Id | None = Field(None, description="the parent company (holding)")
    legal_address: str | None = Field(None, max_length=2000)
    actual_address: str | None = Field(None, max_length=2000)
    city: str | None = Field(None, max_length=100)
    region: str | None = Field(None, max_length=100)
    industry: str | None = Field(None, max_length=200)
    activity: str | None = Field(None, max_length=300, description="kind of activity")
    headcount: int | None = Field(None, ge=0, le=10**9 - 1)
    revenue: Revenue | None = Field(None, description="annual revenue, RUB")
    website: str | None = Field(None, max_length=300)
    birthday: str | None = Field(None, max_length=20, description="a person's, YYYY-MM-DD")
    source: str | None = Field(None, max_length=100)
    notes: str | None = Field(None, max_length=10000)
    segment: str | None = Field(None, max_length=100)
    owner_id: Id | None = None


class ClientCreate(ClientProfile):
    kind: ClientKind = "company"
    name: Name
    status: ClientStatus | None = Field(None, description="default: cold (or the first active)")
    phones: Phones = []
    emails: Emails = []
    tags: Tags = []
    custom: Custom = {}


class ClientPatch(ClientProfile):
    kind: ClientKind | None = None
    name: Name | None = None
    status: ClientStatus | None = None
    phones: Phones | None = Field(None, description="added to the client's phones")
    emails: Emails | None = Field(None, description="added to the client's emails")
    tags: Tags | None = Field(None, description="replaces the client's tags")
    custom: Custom | None = Field(None, description="sets the keys given; null removes one")


class ContactCreate(Texts):
    name: Name
    position: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=10000)
    is_primary: bool = False
    phones: Phones = []
    emails: Emails = []


class ContactPatch(Texts):
    name: Name | None = None
    position: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=10000)
    is_primary: bool | None = None
    phones: Phones | None = Field(None, description="replaces the person's phones")
    emails: Emails | None = Field(None, description="replaces the person's emails")


class StatusCreate(Texts):
    key: str = Field(min_length=1, max_length=20, pattern=r"^[a-z][a-z0-9_]*$")
    name_ru: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    position: int | None = Field(None, ge=0, le=10**6)
    active: bool = True


class StatusPatch(Texts):
    name_ru: str | None = Field(None, min_length=1, max_length=100)
    name_en: str | None = Field(None, min_length=1, max_length=100)
    position: int | None = Field(None, ge=0, le=10**6)
    active: bool | None = None


FieldType = Literal["text", "number", "date", "choice", "multi"]
Options = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=200)
]


class CustomFieldCreate(Texts):
    key: str = Field(min_length=1, max_length=50, pattern=r"^[a-z][a-z0-9_]*$")
    label_ru: str = Field(min_length=1, max_length=200)
    label_en: str = Field("", max_length=200)
    type: FieldType
    options: Options = Field([], description="the choices of choice and multi")
    required: bool = False
    position: int | None = Field(None, ge=0, le=10**6)
    active: bool = True


class CustomFieldPatch(Texts):
    label_ru: str | None = Field(None, min_length=1, max_length=200)
    label_en: str | None = Field(None, max_length=200)
    type: FieldType | None = Field(None, description="refused (409) while clients hold values")
    options: Options | None = None
    required: bool | None = None
    position: int | None = Field(None, ge=0, le=10**6)
    active: bool | None = None


class LeadCreate(Strict):
    name: Name | None = None
    company: Name | None = None
    title: Name | None = None
    phones: Phones = []
    emails: Emails = []
    owner_id: Id | None = None
    client_id: Id | None = None
    source: str = Field("manual", min_length=1, max_length=20)
    source_ref: str | None = Field(None, max_length=200)
    utm: dict[str, str] = {}
    priority: str | None = Field(None, max_length=20)
    tags: list[str] = []


class LeadPatch(Strict):
    status: Literal["new", "in_progress", "converted", "rejected"] | None = None
    owner_id: Id | None = None
    name: Name | None = None
    company: Name | None = None
    title: Name | None = None
    priority: str | None = Field(None, max_length=20)
    tags: list[str] | None = None
    needs_review: bool | None = None
    phones: Phones | None = None
    emails: Emails | None = None


class LeadConvert(Strict):
    client_id: Id | None = Field(None, description="reuse this client instead of a new one")
    kind: ClientKind | None = None
    name: Name | None = None
    inn: str | None = None
    segment: str | None = Field(None, max_length=100)
    owner_id: Id | None = None
    deal_title: Name | None = None
    pipeline_id: Id | None = None
    stage: Stage | None = None
    amount: Amount | None = None
    items: Items | None = None
    currency: str = Field("RUB", pattern=r"^[A-Z]{3}$")


class LeadReject(Strict):
    reason: str = Field(min_length=1, max_length=300)


class DealItemIn(Strict):
    name: Name
    quantity: Decimal = Field(Decimal(1), gt=0, le=Decimal("1e9"), decimal_places=3)
    unit: str = Field("шт", min_length=1, max_length=20)
    price: Amount
    discount: Decimal = Field(
        Decimal(0), ge=0, le=100, decimal_places=2, description="percent off the line"
    )


Items = Annotated[list[DealItemIn], Field(max_length=200)]


class DealCreate(Strict):
    client_id: Id
    title: Name
    pipeline_id: Id | None = Field(None, description="the default pipeline if omitted")
    stage: Stage | None = Field(None, description="an open stage; the first if omitted")
    amount: Amount | None = Field(None, description="or items: their sum is the amount")
    items: Items | None = None
    currency: str = Field("RUB", pattern=r"^[A-Z]{3}$")
    owner_id: Id | None = None


class DealPatch(Strict):
    title: Name | None = None
    amount: Amount | None = None
    items: Items | None = Field(None, description="replaces every line; [] drops them")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    owner_id: Id | None = None


class DealStageMove(Strict):
    stage: Stage


class DealLose(Strict):
    reason_id: Id | None = Field(None, description="an active reason of the pipeline")
    comment: str | None = Field(None, max_length=2000)
    reason: str | None = Field(
        None, max_length=300, description="older clients: a catalogue reason's name"
    )


class DealReopen(Strict):
    stage: Stage | None = Field(None, description="the stage it was closed from if omitted")


class PipelineStageIn(Strict):
    id: Id | None = None
    code: Stage | None = Field(None, description="made up if omitted; won/lost for those kinds")
    name: str = Field(min_length=1, max_length=200)
    name_en: str | None = Field(None, max_length=200)
    probability: int | None = Field(None, ge=0, le=100)
    required_fields: list[Literal["amount", "items"]] = []
    kind: Literal["open", "won", "lost"] = "open"


class LossReasonIn(Strict):
    id: Id | None = None
    name: str = Field(min_length=1, max_length=300)
    name_en: str | None = Field(None, max_length=300)
    active: bool = True


# A catalogue entry, or just its name.
Reason = LossReasonIn | Annotated[str, Field(min_length=1, max_length=300)]


class PipelineCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    name_en: str | None = Field(None, max_length=200)
    is_default: bool = False
    position: int | None = Field(None, ge=0, le=10000)
    stages: list[PipelineStageIn] = Field(min_length=1, max_length=50)
    loss_reasons: list[Reason] = Field([], max_length=200)


class PipelinePatch(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    name_en: str | None = Field(None, max_length=200)
    is_default: bool | None = None
    position: int | None = Field(None, ge=0, le=10000)
    stages: list[PipelineStageIn] | None = Field(None, min_length=1, max_length=50)
    loss_reasons: list[Reason] | None = Field(None, min_length=1, max_length=200)


class TaskCreate(Strict):
    kind: TaskKind = "other"
    title: str = Field(min_length=1, max_length=500)
    due_at: AwareDatetime | None = None
    # A wall-clock time without offset, in the assignee's time zone (instead of due_at).
    due_local: NaiveDatetime | None = None
    remind_at: AwareDatetime | None = Field(None, description="default: the due time")
    remind_local: NaiveDatetime | None = None
    remind_before: int | None = Field(None, ge=0, le=60 * 24 * 60, description="minutes")
    assignee_id: Id | None = None
    client_id: Id | None = None
    lead_id: Id | None = None
    deal_id: Id | None = None
    note: str | None = Field(None, max_length=10000)


class TaskPatch(Strict):
    kind: TaskKind | None = None
    title: str | None = Field(None, min_length=1, max_length=500)
    status: Literal["open", "done", "cancelled"] | None = None
    due_at: AwareDatetime | None = None
    due_local: NaiveDatetime | None = None
    remind_at: AwareDatetime | None = None
    remind_local: NaiveDatetime | None = None
    remind_before: int | None = Field(None, ge=0, le=60 * 24 * 60)
    assignee_id: Id | None = None
    client_id: Id | None = None
    lead_id: Id | None = None
    deal_id: Id | None = None
    note: str | None = Field(None, max_length=10000)
    result: str | None = Field(None, max_length=10000)


class TaskDone(Strict):
    note: str | None = Field(None, max_length=10000)
    result: str | None = Field(None, max_length=10000, description="what came of it")
    next: TaskCreate | None = Field(
        None, description="the next task, planned in the same transaction (same links)"
    )


class TaskSnooze(Strict):
    until: AwareDatetime | None = None
    until_local: NaiveDatetime | None = None  # in the assignee's time zone
    minutes: int | None = Field(None, ge=1, le=60 * 24 * 366)
    preset: Literal["15m", "1h", "3h", "tomorrow", "next_week"] | None = None


class TaskReassign(Strict):
    assignee_id: Id
