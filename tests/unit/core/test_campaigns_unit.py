"""Campaigns without a database: templates, the rate limiter, the message builder and
the Russian wording of their errors."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time

import pytest

from connectors.email.campaign_smtp import build_campaign_message
from crm_core.campaigns import RateLimiter
from crm_core.events import NormalizeError
from crm_core.services.campaigns import TemplateInvalid, Templates
from gateway.errors_ru import russian

CTX = {
    "client": {"name": "<b>ООО «Ромашка»</b>", "custom": {"tariff": "Pro"}},
    "contact": None,
    "owner": {"name": "Ольга", "email": "o@x.ru", "phone": "", "signature": "Ольга\nотдел"},
    "unsubscribe_url": "https://crm.example/u/t",
    "campaign": {"name": "c"},
}


def test_html_is_escaped_text_and_subject_are_not() -> None:
    t = Templates("Для {{ client.name }}", "<p>{{ client.name }}</p>", "{{ client.name }}")
    out = t.render(CTX)
    assert out.subject == "Для <b>ООО «Ромашка»</b>"
    assert out.html == "<p>&lt;b&gt;ООО «Ромашка»&lt;/b&gt;</p>"
    assert out.text == "<b>ООО «Ромашка»</b>"


def test_subject_is_one_line() -> None:
    t = Templates("Привет\n{{ owner.signature }}", "", "x")
    assert t.render(CTX).subject == "Привет Ольга отдел"


@pytest.mark.parametrize(
    ("field", "source", "needle"),
    [
        ("html", "<p>\n{% for x in %}</p>", "line 2"),
        ("text", "{{ client.custom.tarif }}", "tarif"),
        ("text", "{{ client.__class__ }}", "__class__"),
        ("subject", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
        ("text", "{{ contact.name }}", "'None' has no attribute 'name'"),
    ],
)
def test_template_errors_name_the_field(field: str, source: str, needle: str) -> None:
    parts = {"subject": "s", "html": "", "text": "t", field: source}
    with pytest.raises(TemplateInvalid) as err:
        Templates(parts["subject"], parts["html"], parts["text"]).render(CTX)
    assert err.value.field == field
    assert needle in err.value.message or "undefined" in err.value.message


async def test_rate_limiter_per_minute_counts_history() -> None:
    now = time.time()
    limiter = RateLimiter({"per_minute": 3}, history=[now - 59.8, now - 1, now - 1])
    t0 = time.monotonic()
    assert await limiter.acquire()  # the oldest leaves the window after ~0.2 s
    assert time.monotonic() - t0 >= 0.1
    assert not await asyncio.wait_for(limiter.acquire(lambda: True), 2)  # stopped: gives up


def test_no_limits_never_waits() -> None:
    assert asyncio.run(RateLimiter({}).acquire())


def test_campaign_message_headers_and_parts() -> None:
    sender, rcpts, data, msgid = build_campaign_message(
        {
            "from": "Новости CRM <news@crm.example>",
            "to": ["r@example.ru"],
            "subject": "Весеннее предложение",
            "text": "Текст",
            "html": "<p>HTML</p>",
            "message_id": "<crmhub.c1.r2.ab@crm.example>",
            "headers": {
                "List-Unsubscribe": "<https://crm.example/u/t>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        }
    )
    assert sender == "news@crm.example" and rcpts == ["r@example.ru"]
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert str(msg["Subject"]) == "Весеннее предложение"
    assert msg["From"].addresses[0].display_name == "Новости CRM"  # type: ignore[attr-defined]
    assert msg["Message-ID"] == msgid
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip() == "Текст"


def test_campaign_message_refuses_header_injection() -> None:
    with pytest.raises(NormalizeError):
        build_campaign_message(
            {
                "from": "n@crm.example",
                "to": ["r@example.ru"],
                "subject": "x\r\nBcc: evil@example.com",
                "text": "t",
                "message_id": "<a@b>",
            }
        )


@pytest.mark.parametrize(
    ("message", "ru"),
    [
        ("campaign 5 not found", "Рассылка 5 не найдена"),
        (
            "html: template error on line 2: unexpected '}'",
            "html: ошибка в шаблоне, строка 2: unexpected '}'",
        ),
        (
            "the audience is empty: no client with an email address matches",
            "Аудитория пуста: ни у одного подходящего клиента нет адреса email",
        ),
        ("segment 4 no longer exists", "Сегмента 4 больше нет"),
    ],
)
def test_russian_errors(message: str, ru: str) -> None:
    assert russian(message) == ru
