"""A small client base with every profile field filled, for the export tests."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from crm_core.db import Database
from crm_core.models import (
    Client,
    ClientTag,
    ContactPerson,
    ContactPoint,
    CustomField,
    Segment,
    SegmentClient,
    User,
)
from crm_core.services.users import create_user

_W10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_W11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_W12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _digit(digits: str, weights: tuple[int, ...]) -> str:
    return str(sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11 % 10)


def inn10(stem: str) -> str:
    """A valid 10-digit INN from 9 digits."""
    return stem + _digit(stem, _W10)


def inn12(stem: str) -> str:
    first = stem + _digit(stem, _W11)
    return first + _digit(first, _W12)


USERS = (("boss@example.ru", "admin", "Босс"), ("petrov@example.ru", "manager", "Петров Пётр"))


async def seed_users(db: Database) -> dict[str, int]:
    out: dict[str, int] = {}
    async with db.transaction() as s:
        for email, role, name in USERS:
            found = await s.scalar(select(User).where(User.email == email))
            if found is None:
                found, _ = await create_user(s, email, role, name=name)
            out[email] = found.id
    return out


def _point(kind: str, value: str, ext: str | None = None, **owner: Any) -> ContactPoint:
    return ContactPoint(kind=kind, value=value, extension=ext, **owner)


async def seed_base(db: Database) -> dict[str, int]:
    """Five clients: a full company with two contact persons, its subsidiary, a person, a
    company without INN (with a contact person) and a formula-looking name."""
    users = await seed_users(db)
    petrov = users["petrov@example.ru"]
    boss = users["boss@example.ru"]
    ids: dict[str, int] = {}
    async with db.transaction() as s:
        s.add_all(
            [
                CustomField(key="discount", label_ru="Скидка, %", type="number", position=1),
                CustomField(
                    key="channel",
                    label_ru="Канал продаж",
                    type="choice",
                    options=["опт", "розница"],
                    position=2,
                ),
                CustomField(key="contract", label_ru="Дата договора", type="date", position=3),
                CustomField(
                    key="brands",
                    label_ru="Бренды",
                    type="multi",
                    options=["A", "B", "C"],
                    position=4,
                ),
            ]
        )
        retail = Segment(name="Розница")
        moscow = Segment(name="Москва")
        s.add_all([retail, moscow])
        await s.flush()
        romashka = Client(
            kind="company",
            name="ООО Ромашка",
            full_name='Общество с ограниченной ответственностью "Ромашка"',
            inn=inn10("770123456"),
            kpp="770101001",
            ogrn="1027700132195",
            legal_address="г. Москва, ул. Ленина, д. 1",
            actual_address="г. Москва, ул. Мира, д. 2, офис 5",
            city="Москва",
            region="Москва",
            industry="Розничная торговля",
            activity="47.11 Торговля розничная",
            headcount=120,
            revenue=Decimal("12500000.50"),
            website="https://romashka.example.ru",
            status="active",
            owner_id=petrov,
            source="выставка",
            segment_id=retail.id,
            custom={
                "discount": 7.5,
                "channel": "опт",
                "contract": "2025-02-01",
                "brands": ["A", "C"],
            },
            notes="Ключевой клиент; звонить до 17:00",
        )
        s.add(romashka)
        await s.flush()
        ids["romashka"] = romashka.id
        lutik = Client(
            kind="company",
            name="Лютик",
            inn=inn10("500100732"),
            status="thinking",
            owner_id=petrov,
            parent_id=romashka.id,
            city="Химки",
            region="Московская область",
        )
        sidorov = Client(
            kind="person",
            name="Сидоров Пётр Ильич",
            inn=inn12("7707083893"),
            birthday=date(1980, 5, 17),
            status="regular",
            owner_id=boss,
            source="сайт",
        )
        vasilek = Client(kind="company", name="Василёк", status="cold", owner_id=boss)
        formula = Client(
            kind="company",
            name='=HYPERLINK("http://evil.example","click")',
            status="cold",
            owner_id=boss,
            notes="-2+3 @SUM(A1)",
        )
        s.add_all([lutik, sidorov, vasilek, formula])
        await s.flush()
        ids.update(lutik=lutik.id, sidorov=sidorov.id, vasilek=vasilek.id, formula=formula.id)
        s.add_all(
            [
                ClientTag(client_id=romashka.id, tag="vip"),
                ClientTag(client_id=romashka.id, tag="опт"),
                ClientTag(client_id=sidorov.id, tag="vip"),
                SegmentClient(segment_id=moscow.id, client_id=lutik.id),
                SegmentClient(segment_id=retail.id, client_id=lutik.id),
                # membership is segment_clients (0006); segment_id above is the old column
                SegmentClient(segment_id=retail.id, client_id=romashka.id),
            ]
        )
        ivanov = ContactPerson(
            client_id=romashka.id, name="Иванов Иван", position="Директор", is_primary=True
        )
        anna = ContactPerson(client_id=romashka.id, name="Петрова Анна", position="Бухгалтер")
        olga = ContactPerson(client_id=vasilek.id, name="Ольга Смирнова", position="Закупщик")
        s.add_all([ivanov, anna, olga])
        await s.flush()
        s.add_all(
            [
                _point("phone", "+74951234567", "12", client_id=romashka.id),
                _point("phone", "+79161234567", client_id=romashka.id),
                _point("email", "info@romashka.ru", client_id=romashka.id),
                _point("phone", "+79031112233", contact_person_id=ivanov.id),
                _point("email", "ivan@romashka.ru", contact_person_id=ivanov.id),
                _point("email", "anna@romashka.ru", contact_person_id=anna.id),
                _point("email", "lutik@example.ru", client_id=lutik.id),
                _point("phone", "+79265554433", client_id=sidorov.id),
                _point("email", "sidorov@mail.example", client_id=sidorov.id),
                _point("phone", "+78123334455", client_id=vasilek.id),
                _point("phone", "+79217778899", contact_person_id=olga.id),
                _point("email", "evil@example.ru", client_id=formula.id),
            ]
        )
    # email consent ("Согласие на рассылку"): agreed, withdrawn, unsubscribed by itself
    from crm_core.services import consent

    async with db.transaction() as s:
        await consent.set_consent(s, "info@romashka.ru", "granted", "manager", None)
        await consent.set_consent(s, "ivan@romashka.ru", "withdrawn", "manager", None)
        await consent.suppress(s, "anna@romashka.ru", "unsubscribed", "one_click")
    return ids


async def snapshot(db: Database) -> dict[str, dict[str, Any]]:
    """Every client by name: the profile and what hangs on it, in comparable form."""
    out: dict[str, dict[str, Any]] = {}
    async with db.sessions() as s:
        emails = dict((await s.execute(select(User.id, User.email))).all())
        names = dict((await s.execute(select(Client.id, Client.name))).all())
        segs = dict((await s.execute(select(Segment.id, Segment.name))).all())
        labels = {f.key: f.label_ru for f in await s.scalars(select(CustomField))}
        for c in await s.scalars(select(Client)):
            points = list(
                await s.scalars(
                    select(ContactPoint).where(
                        ContactPoint.client_id == c.id, ContactPoint.contact_person_id.is_(None)
                    )
                )
            )
            persons = {}
            for p in await s.scalars(select(ContactPerson).where(ContactPerson.client_id == c.id)):
                pp = list(
                    await s.scalars(
                        select(ContactPoint).where(ContactPoint.contact_person_id == p.id)
                    )
                )
                persons[p.name] = {
                    "position": p.position,
                    "phones": sorted(x.value for x in pp if x.kind == "phone"),
                    "emails": sorted(x.value for x in pp if x.kind == "email"),
                }
            member = set(
                await s.scalars(
                    select(SegmentClient.segment_id).where(SegmentClient.client_id == c.id)
                )
            )
            if c.segment_id:
                member.add(c.segment_id)
            out[c.name] = {
                "kind": c.kind,
                "inn": c.inn,
                "kpp": c.kpp or "",
                "full_name": c.full_name,
                "ogrn": c.ogrn,
                "legal_address": c.legal_address,
                "actual_address": c.actual_address,
                "city": c.city,
                "region": c.region,
                "industry": c.industry,
                "activity": c.activity,
                "headcount": c.headcount,
                "revenue": c.revenue,
                "website": c.website,
                "birthday": c.birthday,
                "source": c.source,
                "status": c.status,
                "owner": emails.get(c.owner_id),
                "parent": names.get(c.parent_id),
                "notes": c.notes or "",
                "tags": sorted(
                    await s.scalars(select(ClientTag.tag).where(ClientTag.client_id == c.id))
                ),
                "segments": sorted(segs[i] for i in member),
                "custom": {labels.get(k, k): v for k, v in (c.custom or {}).items()},
                "phones": sorted((x.value, x.extension) for x in points if x.kind == "phone"),
                "emails": sorted(x.value for x in points if x.kind == "email"),
                "persons": persons,
            }
        from crm_core.models import EmailConsent

        states = dict((await s.execute(select(EmailConsent.email, EmailConsent.state))).all())
        for c in out.values():
            addresses = c["emails"] + [e for p in c["persons"].values() for e in p["emails"]]
            c["consent"] = {e: states[e] for e in sorted(addresses) if e in states}
    return out
