"""Demo data so a newcomer sees a populated CRM: managers, clients, deals, tasks, a timeline."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.models import (
    Client,
    ClientTag,
    ContactPerson,
    ContactPoint,
    CustomField,
    Deal,
    DealItem,
    DealStageChange,
    Interaction,
    Lead,
    Segment,
    SegmentClient,
    Task,
    User,
    utcnow,
)
from crm_core.services.auth import create_token, hash_password
from crm_core.services.pipelines import create_pipeline, default_pipeline, load_funnel

__all__ = ["load_demo"]

MANAGERS = [
    ("admin@demo.crmhub.local", "Администратор", "admin", None, None),
    ("head@demo.crmhub.local", "Ольга Руководитель", "supervisor", "sales", "100"),
    ("petrov@demo.crmhub.local", "Пётр Петров", "manager", "sales", "101"),
    ("ivanova@demo.crmhub.local", "Ирина Иванова", "manager", "sales", "102"),
    ("sidorov@demo.crmhub.local", "Сергей Сидоров", "manager", "sales", "103"),
]
CLIENTS = [
    (
        "company",
        "ООО «Ромашка»",
        "7707083893",
        "distributors",
        "active",
        "+74951234567",
        "info@romashka.example",
        "Анна Смирнова",
        "proposal",
        Decimal("450000"),
    ),
    (
        "company",
        "АО «Северный банк»",
        "7702070139",
        "banks",
        "ready",
        "+78122345678",
        "purchase@sevbank.example",
        "Дмитрий Орлов",
        "negotiation",
        Decimal("1200000"),
    ),
    (
        "company",
        "Клиника «Здоровье»",
        "5003052454",
        "clinics",
        "thinking",
        "+74959876543",
        "admin@zdorovie.example",
        "Елена Кузнецова",
        "qualification",
        Decimal("180000"),
    ),
    (
        "person",
        "Мария Волкова",
        None,
        "retail",
        "regular",
        "+79165551234",
        "maria.volkova@example.ru",
        None,
        "contract",
        Decimal("35000"),
    ),
    (
        "person",
        "Алексей Новиков",
        None,
        "retail",
        "cold",
        "+79031112233",
        "novikov@example.ru",
        None,
        "new",
        Decimal("12000"),
    ),
]


# The second pipeline of the demo: retail, with line items required before the invoice.
B2C = {
    "name": "B2C — розница",
    "name_en": "B2C — retail",
    "stages": [
        {"code": "new", "name": "Заявка", "name_en": "Request", "probability": 10},
        {"code": "selection", "name": "Подбор", "name_en": "Selection", "probability": 30},
        {
            "code": "invoice",
            "name": "Счёт",
            "name_en": "Invoice",
            "probability": 70,
            "required_fields": ["items"],
        },
        {
            "code": "delivery",
            "name": "Доставка",
            "name_en": "Delivery",
            "probability": 90,
            "required_fields": ["items"],
        },
    ],
    "loss_reasons": [
        {"name": "Дорого", "name_en": "Too expensive"},
        {"name": "Нет в наличии", "name_en": "Out of stock"},
        {"name": "Нашёл дешевле", "name_en": "Found it cheaper"},
        {"name": "Передумал", "name_en": "Changed their mind"},
        {"name": "Другое", "name_en": "Other"},
    ],
}
# (client index in CLIENTS, title, stage path, items (name, qty, unit, price, discount %),
# loss reason)
B2C_DEALS: list[tuple[int, str, tuple[str, ...], list[tuple[str, str, str, str, str]], str]] = [
    (
        3,
        "Кухонный гарнитур",
        ("new", "selection", "invoice"),
        [
            ("Гарнитур «Лайт» 2,4 м", "1", "компл", "189000", "5"),
            ("Сборка и установка", "1", "усл", "15000", "0"),
        ],
        "",
    ),
    (
        3,
        "Шкаф-купе",
        ("new", "selection", "invoice", "won"),
        [("Шкаф 1,8 м", "1", "шт", "64000", "0")],
        "",
    ),
    (4, "Диван угловой", ("new", "selection", "lost"), [], "Нашёл дешевле"),
]


async def _demo_pipelines(s: Any, admin: User) -> dict[str, Any]:
    """The default pipeline named for B2B equipment sales, and a B2C retail one."""
    b2b = await default_pipeline(s)
    b2b.name, b2b.name_en = "B2B — оборудование", "B2B — equipment"
    await s.flush()
    b2c = await create_pipeline(s, Actor.of(admin), B2C)
    return {"b2b": await load_funnel(s, b2b.id), "b2c": b2c}


# The business profile of each client above, by name: the profile columns, tags, custom
# field values and contact persons (name, position, phone, email, primary).
PROFILES: dict[str, dict[str, Any]] = {
    "ООО «Ромашка»": {
        "full_name": "Общество с ограниченной ответственностью «Ромашка»",
        "kpp": "773601001",
        "ogrn": "1027700132195",
        "legal_address": "119002, г. Москва, ул. Арбат, д. 10",
        "city": "Москва",
        "region": "Москва",
        "industry": "Оптовая торговля",
        "activity": "46.90 Торговля оптовая неспециализированная",
        "headcount": 85,
        "revenue": Decimal("120000000"),
        "website": "https://romashka.example",
        "source": "выставка",
        "tags": ["опт", "vip"],
        "custom": {"priority": "A", "brands": ["Север", "Юг"], "stores": 12},
        "people": [
            ("Анна Смирнова", "Закупки", "+79161112233", "anna@romashka.example", True),
            ("Игорь Белов", "Финансовый директор", "+79162223344", "belov@romashka.example", False),
        ],
    },
    "АО «Северный банк»": {
        "full_name": "Акционерное общество «Северный банк»",
        "kpp": "784201001",
        "city": "Санкт-Петербург",
        "region": "Санкт-Петербург",
        "industry": "Банки",
        "headcount": 1200,
        "revenue": Decimal("950000000"),
        "website": "https://sevbank.example",
        "source": "рекомендация",
        "tags": ["банк"],
        "custom": {"priority": "A"},
        "people": [
            ("Дмитрий Орлов", "Начальник АХО", "+78122345679", "orlov@sevbank.example", True)
        ],
    },
    "Клиника «Здоровье»": {
        "city": "Химки",
        "region": "Московская область",
        "industry": "Медицина",
        "headcount": 40,
        "revenue": Decimal("60000000"),
        "source": "сайт",
        "tags": ["клиники"],
        "custom": {"priority": "B", "stores": 2},
        "people": [("Елена Кузнецова", "Главврач", None, "kuznetsova@zdorovie.example", True)],
    },
    "Мария Волкова": {"city": "Москва", "birthday": date(1988, 4, 12), "source": "сайт"},
    "Алексей Новиков": {"city": "Тверь", "region": "Тверская область", "source": "звонок"},
}
# Two custom fields for the demo: (key, Russian, English, type, options).
DEMO_FIELDS: tuple[tuple[str, str, str, str, list[str]], ...] = (
    ("priority", "Приоритет", "Priority", "choice", ["A", "B", "C"]),
    ("brands", "Бренды", "Brands", "multi", ["Север", "Юг", "Восток"]),
    ("stores", "Магазинов", "Stores", "number", []),
)


async def load_demo(db: Database) -> dict[str, Any]:
    """Idempotent: a second run finds the demo users and adds nothing."""
    now = utcnow()
    async with db.transaction() as s:
        if await s.scalar(select(User.id).where(User.email == MANAGERS[0][0])):
            return {"loaded": False, "reason": "demo data is already there"}
        tokens: dict[str, str] = {}
        users: list[User] = []
        for email, name, role, team, ext in MANAGERS:
            u = User(
                email=email,
                name=name,
                role=role,
                team=team,
                extension=ext,
                token_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
            )
            s.add(u)
            users.append(u)
        await s.flush()
        passwords: dict[str, str] = {}
        for u in users:  # an API token each (origin admin, as `users add` gives)
            issued, tokens[u.email] = await create_token(s, u, "API token", origin="admin")
            u.token_hash = issued.token_hash
            # and a password to sign in with in the browser (printed once, stored hashed)
            passwords[u.email] = secrets.token_urlsafe(12)
            u.password_hash = await asyncio.to_thread(hash_password, passwords[u.email])
        funnels = await _demo_pipelines(s, users[0])
        managers = [u for u in users if u.role == "manager"]
        clients: list[Client] = []

        for pos, (key, ru, en, ftype, options) in enumerate(DEMO_FIELDS):
            if await s.scalar(select(CustomField.id).where(CustomField.key == key)) is None:
                s.add(
                    CustomField(
                        key=key,
                        label_ru=ru,
                        label_en=en,
                        type=ftype,
                        options=options,
                        position=(pos + 1) * 10,
                    )
                )
        segments: dict[str, Segment] = {}
        for i, row in enumerate(CLIENTS):
            kind, name, inn, seg, status, phone, email, person, stage, amount = row
            if seg not in segments:
                segments[seg] = Segment(name=seg)
                s.add(segments[seg])
                await s.flush()
            owner = managers[i % len(managers)]
            profile = dict(PROFILES.get(name, {}))
            tags = profile.pop("tags", [])
            people = profile.pop("people", [])
            c = Client(
                kind=kind,
                name=name,
                inn=inn,
                status=status,
                owner_id=owner.id,
                last_contact_at=now - timedelta(days=2, hours=i),
                **profile,
            )
            s.add(c)
            await s.flush()
            clients.append(c)
            s.add(SegmentClient(segment_id=segments[seg].id, client_id=c.id))
            s.add(ContactPoint(kind="phone", value=phone, client_id=c.id))
            s.add(ContactPoint(kind="email", value=email, client_id=c.id))
            s.add_all(ClientTag(client_id=c.id, tag=tag) for tag in tags)
            if person and not people:
                s.add(ContactPerson(client_id=c.id, name=person, position="Закупки"))
            for p_name, position, p_phone, p_email, primary in people:
                cp = ContactPerson(
                    client_id=c.id, name=p_name, position=position, is_primary=primary
                )
                s.add(cp)
                await s.flush()
                for ckind, value in (("phone", p_phone), ("email", p_email)):
                    if value:
                        s.add(
                            ContactPoint(
                                kind=ckind, value=value, client_id=c.id, contact_person_id=cp.id
                            )
                        )
            d = Deal(
                client_id=c.id,
                pipeline_id=funnels["b2b"].id,
                title=f"Поставка — {name}",  # no Russian declension of names here
                stage=stage,
                amount=amount,
                owner_id=owner.id,
                created_at=now - timedelta(days=20 - i),
            )
            s.add(d)
            await s.flush()
            s.add(DealStageChange(deal_id=d.id, from_stage=None, to_stage="new", user_id=owner.id))
            if stage != "new":
                s.add(
                    DealStageChange(
                        deal_id=d.id, from_stage="new", to_stage=stage, user_id=owner.id
                    )
                )
            s.add(
                Interaction(
                    client_id=c.id,
                    deal_id=d.id,
                    channel="call",
                    direction="in",
                    kind="call_ended",
                    outcome="answered",
                    duration_s=185,
                    ring_s=6,
                    body="Обсудили условия поставки",
                    occurred_at=now - timedelta(days=3, hours=i),
                    user_id=owner.id,
                )
            )
            s.add(
                Interaction(
                    client_id=c.id,
                    deal_id=d.id,
                    channel="email",
                    direction="out",
                    kind="email_sent",
                    subject=f"Коммерческое предложение [#D-{d.id}]",
                    body="Добрый день! Направляем предложение.",
                    occurred_at=now - timedelta(days=2, hours=i),
                    user_id=owner.id,
                )
            )
            s.add(
                Task(
                    kind="send_offer" if i % 2 else "call_back",
                    title="Отправить КП" if i % 2 else f"Перезвонить {phone}",
                    due_at=now + timedelta(hours=4 + i),
                    remind_at=now + timedelta(hours=4 + i),
                    assignee_id=owner.id,
                    client_id=c.id,
                    deal_id=d.id,
                )
            )
        b2c = funnels["b2c"]
        for i, title, path, items, reason in B2C_DEALS:
            c = clients[i]
            lost = next((r for r in b2c.reasons if r.name == reason), None)
            d = Deal(
                client_id=c.id,
                pipeline_id=b2c.id,
                title=title,
                stage=path[-1],
                currency="RUB",
                owner_id=c.owner_id,
                loss_reason=lost.name if lost else None,
                loss_reason_id=lost.id if lost else None,
                loss_comment="В соседнем салоне на 10% дешевле" if lost else None,
                amount=Decimal("95000") if not items else None,
                created_at=now - timedelta(days=12 - 2 * i),
                closed_at=now - timedelta(days=1) if path[-1] in ("won", "lost") else None,
            )
            s.add(d)
            await s.flush()
            total = Decimal(0)
            for pos, (iname, qty, unit, price, discount) in enumerate(items):
                line = DealItem(
                    deal_id=d.id,
                    position=pos,
                    name=iname,
                    quantity=Decimal(qty),
                    unit=unit,
                    price=Decimal(price),
                    discount=Decimal(discount),
                )
                s.add(line)
                total += (Decimal(qty) * Decimal(price) * (100 - Decimal(discount)) / 100).quantize(
                    Decimal("0.01")
                )
            if items:
                d.amount = total
            prev = None
            for stage in path:
                s.add(
                    DealStageChange(
                        deal_id=d.id, from_stage=prev, to_stage=stage, user_id=c.owner_id
                    )
                )
                prev = stage
        lead = Lead(
            status="new",
            source="webform",
            source_ref="demo",
            title="Заявка с сайта: Ксения",
            name="Ксения",
            owner_id=managers[0].id,
            utm={"utm_source": "yandex"},
            rule_id="default",
            assign_reason="round robin among active managers",
        )
        s.add(lead)
        await s.flush()
        s.add(ContactPoint(kind="phone", value="+79261234567", lead_id=lead.id))
        s.add(
            Interaction(
                lead_id=lead.id,
                channel="webform",
                direction="in",
                kind="form_submitted",
                body="Хочу узнать цены",
                occurred_at=now - timedelta(hours=1),
            )
        )
    return {
        "loaded": True,
        "users": [{"email": e, "password": passwords[e], "token": t} for e, t in tokens.items()],
    }
