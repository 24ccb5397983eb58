"""Pure pieces of the API: INN checksums, stages, access rules, query parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from crm_core.access import Actor, can_assign_to, visible_clients, visible_leads
from crm_core.models import User
from crm_core.services.clients import validate_inn
from crm_core.services.common import Invalid
from crm_core.stages import FIRST_STAGE, OPEN_STAGES, STAGE_CODES, stage_label
from gateway.api.schemas import ClientCreate, LeadListQuery
from gateway.errors import validation_field


@pytest.mark.parametrize(
    ("inn", "ok"),
    [
        ("7707083893", True),  # Sberbank
        ("7702070139", True),
        ("5003052454", True),
        ("500100732259", True),  # a person's 12-digit INN
        ("7707083894", False),
        ("500100732250", False),
        ("770708389", False),
        ("77070838931", False),
        ("77070838a3", False),
        ("", False),
    ],
)
def test_inn(inn: str, ok: bool) -> None:
    if ok:
        assert validate_inn(f" {inn} ") == inn
    else:
        with pytest.raises(Invalid) as err:
            validate_inn(inn)
        assert err.value.field == "inn"


def test_stages() -> None:
    assert STAGE_CODES == (
        "new",
        "qualification",
        "proposal",
        "negotiation",
        "contract",
        "won",
        "lost",
    )
    assert FIRST_STAGE == "new" and "won" not in OPEN_STAGES
    assert stage_label("negotiation") == "Переговоры"
    assert stage_label("negotiation", "en") == "Negotiation"
    assert stage_label("unknown") == "unknown"


def _user(uid: int, role: str, team: str | None, active: bool = True) -> User:
    return User(
        id=uid, email=f"{uid}@x.ru", role=role, team=team, token_hash=str(uid), active=active
    )


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (Actor(1, "admin"), _user(5, "manager", "B"), True),
        (Actor(1, "admin"), _user(5, "manager", "B", active=False), False),
        (Actor(2, "supervisor", "A"), _user(3, "manager", "A"), True),
        (Actor(2, "supervisor", "A"), _user(5, "manager", "B"), False),
        (Actor(2, "supervisor", None), _user(3, "manager", None), False),
        (Actor(3, "manager", "A"), _user(3, "manager", "A"), True),
        (Actor(3, "manager", "A"), _user(4, "manager", "A"), False),
        (Actor(9, "auditor", "A"), _user(4, "manager", "A"), False),
    ],
)
def test_can_assign_to(actor: Actor, target: User, allowed: bool) -> None:
    assert can_assign_to(actor, target) is allowed


def test_filters_compile_to_what_the_role_allows() -> None:
    def sql(expr: object) -> str:
        return str(expr.compile(compile_kwargs={"literal_binds": True}))  # type: ignore[attr-defined]

    assert sql(visible_clients(Actor(1, "admin"))) == "true"
    assert sql(visible_clients(Actor(3, "manager", "A"))) == "clients.owner_id = 3"
    sup = sql(visible_leads(Actor(2, "supervisor", "A")))
    assert "leads.owner_id = 2" in sup and "users.team = 'A'" in sup and "leads.queue = 'A'" in sup
    assert sql(visible_clients(Actor(7, "stranger"))) == "false"


def test_list_query_periods_and_errors() -> None:
    flt = LeadListQuery.model_validate(
        {
            "created_from": "2026-01-31",
            "created_to": "2026-02-01",
            "needs_review": "true",
            "limit": "10",
        }
    ).to_filter()
    assert flt.created_from == datetime(2026, 1, 31, tzinfo=UTC)
    assert flt.created_to == datetime(2026, 2, 2, tzinfo=UTC)  # the whole day, exclusive
    assert flt.extra == {"needs_review": True} and flt.limit == 10
    flt = LeadListQuery.model_validate({"created_from": "2026-01-31T10:00:00"}).to_filter()
    assert flt.created_from == datetime(2026, 1, 31, 10, tzinfo=UTC)
    with pytest.raises(ValidationError) as err:
        LeadListQuery.model_validate({"limit": "500"})
    assert validation_field(err.value)[0] == "limit"
    with pytest.raises(ValidationError) as err:
        ClientCreate.model_validate({"name": "X", "phones": ["+7916", 5]})
    assert validation_field(err.value)[0] == "phones.1"
