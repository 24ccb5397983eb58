"""users add / forms add services behind the CLI; token lookup."""

from __future__ import annotations

import hashlib

import pytest

from crm_core.db import Database
from crm_core.models import User
from crm_core.services.common import Conflict, Invalid, ServiceError
from crm_core.services.forms import create_form
from crm_core.services.users import create_user, user_by_token


async def test_create_user_and_token(db: Database) -> None:
    async with db.transaction() as s:
        user, token = await create_user(
            s, " Ivan@Example.RU ", "manager", name="Иван", extension="101", team="A"
        )
    assert len(token) >= 40
    async with db.sessions() as s:
        found = await user_by_token(s, token)
        assert found is not None and found.id == user.id
        assert found.email == "ivan@example.ru" and found.team == "A"
        assert found.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert await user_by_token(s, token + "x") is None
        assert await user_by_token(s, "") is None
        row = await s.get(User, user.id)
        assert row is not None and token not in (row.token_hash,)


@pytest.mark.parametrize(
    ("email", "role", "extension", "error", "field"),
    [
        ("ivan@example.ru", "manager", None, Conflict, "email"),
        ("IVAN@example.ru", "admin", None, Conflict, "email"),
        ("other@example.ru", "manager", "101", Conflict, "extension"),
        ("not an email", "manager", None, Invalid, "email"),
        ("x@example.ru", "boss", None, Invalid, "role"),
    ],
)
async def test_create_user_errors(
    db: Database,
    email: str,
    role: str,
    extension: str | None,
    error: type[ServiceError],
    field: str,
) -> None:
    async with db.transaction() as s:
        await create_user(s, "ivan@example.ru", "manager", extension="101")
    with pytest.raises(error) as exc:
        async with db.transaction() as s:
            await create_user(s, email, role, extension=extension)
    assert exc.value.field == field
    assert isinstance(exc.value, ValueError)  # the CLI reports ValueErrors in one line


async def test_create_form(db: Database) -> None:
    async with db.transaction() as s:
        form = await create_form(s, "Сайт", aliases={"Ваш телефон": "phone"})
        other = await create_form(s, "Лендинг")
    assert form.key != other.key and len(form.key) >= 10
    assert len(form.secret) >= 32 and form.secret != other.secret
    assert form.aliases == {"Ваш телефон": "phone"}
    with pytest.raises(Invalid):
        async with db.transaction() as s:
            await create_form(s, "  ")
