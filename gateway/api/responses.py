"""Response models of the REST API: documentation in the OpenAPI document, and the
tests validate real responses against them so they stay true."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BoardOut",
    "ClientOut",
    "ContactOut",
    "ConvertOut",
    "CustomFieldOut",
    "DealItemOut",
    "DealOut",
    "DealWithHistoryOut",
    "FormOut",
    "InteractionOut",
    "LeadOut",
    "LiveTicketOut",
    "PipelineOut",
    "StageChangeOut",
    "StageOut",
    "StatusOut",
    "TaskDoneOut",
    "TaskOut",
    "UserOut",
    "UserTokenOut",
]


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserOut(Out):
    id: int
    email: str
    name: str
    role: str
    team: str | None
    extension: str | None
    active: bool
    timezone: str
    locale: str
    working_hours: dict[str, list[list[str]]] = Field(
        description='weekday 0 (Monday) to 6 -> local windows [["09:00", "18:00"]]'
    )
    absences: list[dict[str, str]] = Field(description="[{start, end, reason}], dates")
    capacity: int | None = Field(description="open leads and tasks at most; null: no cap")
    weight: int = Field(description="share in weighted round robin, 1 to 100")
    phone: str | None = Field(None, description="shown as owner.phone in campaign templates")
    signature: str = Field("", description="owner.signature in campaign templates")
    created_at: str | None


class FormOut(Out):
    id: int
    key: str
    name: str
    secret: str
    aliases: dict[str, str]
    honeypot_fields: list[str]
    active: bool
    created_at: str | None
    webhook_url: str = Field(description="where the site posts (the secret in the query)")
    html_snippet: str = Field(description="a ready HTML form for the site")


class UserTokenOut(UserOut):
    token: str = Field(description="the new API token, shown once")


class LiveTicketOut(Out):
    ticket: str = Field(description="single use: /live?ticket=... or /live/sse?ticket=...")
    expires_in: int = Field(description="seconds")


class SegmentRef(Out):
    id: int
    name: str


class ContactOut(Out):
    id: int
    client_id: int
    name: str
    position: str | None
    notes: str
    is_primary: bool
    phones: list[str]
    emails: list[str]
    created_at: str | None


class ClientRefOut(Out):
    id: int
    name: str | None = Field(description="null when you may not see that client")


class BranchOut(Out):
    id: int
    name: str
    kpp: str


class ClientOut(Out):
    id: int
    kind: str
    name: str
    full_name: str | None
    inn: str | None
    segment: str | None = Field(description="the first of ``segments`` (compatibility)")
    segments: list[SegmentRef] = Field(description="every segment the client is in")
    kpp: str = Field(description="'' for a head office")
    ogrn: str | None
    status: str
    owner_id: int | None
    parent_id: int | None
    parent: ClientRefOut | None
    branches: list[BranchOut]
    legal_address: str | None
    actual_address: str | None
    city: str | None
    region: str | None
    industry: str | None
    activity: str | None
    headcount: int | None
    revenue: str | None
    website: str | None
    birthday: str | None
    source: str | None
    tags: list[str]
    custom: dict[str, Any]
    contacts: list[ContactOut]
    last_contact_at: str | None
    notes: str
    phones: list[str]
    emails: list[str]
    created_at: str | None
    updated_at: str | None


class StatusOut(Out):
    key: str
    name_ru: str
    name_en: str
    position: int
    active: bool
    clients: int | None = Field(None, description="clients holding it (admins only)")


class CustomFieldOut(Out):
    id: int
    entity: str
    key: str
    label_ru: str
    label_en: str
    type: str
    options: list[str]
    required: bool
    position: int
    active: bool
    created_at: str | None


class LeadOut(Out):
    id: int
    status: str
    owner_id: int | None
    source: str
    source_ref: str | None
    title: str
    name: str | None
    company: str | None
    client_id: int | None
    deal_id: int | None
    phones: list[str]
    emails: list[str]
    utm: dict[str, Any]
    needs_review: bool
    rule_id: str | None
    assign_reason: str | None
    assign_reason_ru: str | None
    queue: str | None
    priority: str | None
    tags: list[Any]
    loss_reason: str | None
    created_at: str | None
    closed_at: str | None


class DealItemOut(Out):
    id: int
    name: str
    quantity: str
    unit: str
    price: str | None
    discount: str
    total: str | None


class DealOut(Out):
    id: int
    client_id: int
    client_name: str | None
    lead_id: int | None
    pipeline_id: int
    title: str
    stage: str
    stage_label: str
    stage_label_en: str
    stage_kind: str
    probability: int | None
    amount: str | None
    currency: str
    owner_id: int | None
    loss_reason: str | None
    loss_reason_id: int | None
    loss_comment: str | None
    items: list[DealItemOut]
    created_at: str | None
    updated_at: str | None
    closed_at: str | None


class PipelineStageOut(Out):
    id: int
    code: str
    name: str
    name_en: str
    position: int
    probability: int
    kind: str
    closed: bool
    required_fields: list[str]


class LossReasonOut(Out):
    id: int
    name: str
    name_en: str
    position: int
    active: bool


class PipelineOut(Out):
    id: int
    name: str
    name_en: str
    is_default: bool
    position: int
    stages: list[PipelineStageOut]
    loss_reasons: list[LossReasonOut]


class BoardColumnOut(Out):
    stage: str
    count: int
    amount: str
    items: list[DealOut]


class BoardOut(Out):
    pipeline: PipelineOut
    columns: list[BoardColumnOut]


class StageChangeOut(Out):
    from_: str | None = Field(alias="from")
    to: str
    user_id: int | None
    at: str | None


class DealWithHistoryOut(DealOut):
    history: list[StageChangeOut]


class ConvertOut(Out):
    lead: LeadOut
    client: ClientOut
    deal: DealOut


class TaskOut(Out):
    id: int
    kind: str
    kind_title_ru: str
    kind_title_en: str
    title: str
    status: str
    due_at: str | None
    remind_at: str | None
    reminded_at: str | None
    sla_due_at: str | None
    sla_warned_at: str | None
    escalated_at: str | None
    assignee_id: int | None
    client_id: int | None
    lead_id: int | None
    deal_id: int | None
    created_by: int | None
    note: str
    result: str | None
    created_at: str | None
    closed_at: str | None


class TaskDoneOut(TaskOut):
    next_task: TaskOut | None = None


class InteractionOut(Out):
    id: int
    occurred_at: str | None
    channel: str
    direction: str
    kind: str
    outcome: str | None
    classification: str
    duration_s: int | None
    recording_url: str | None
    recording_href: str | None
    subject: str | None
    body: str | None
    html: str | None
    thread_id: str | None
    user_id: int | None
    client_id: int | None
    lead_id: int | None
    deal_id: int | None
    meta: dict[str, Any]
    contact_person: dict[str, Any] | None = Field(
        None, description="the company's contact person who called or wrote: {id, name}"
    )


class StageOut(Out):
    code: str
    ru: str
    en: str
    closed: bool
