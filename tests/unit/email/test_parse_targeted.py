"""Targeted cases: sanitizing, charsets, filenames, encoded words, threads, bounces."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from connectors.email.html import html_to_text, sanitize_html
from connectors.email.normalize import parse_message, stable_digest
from connectors.email.parse_headers import (
    decode_header_text,
    format_subject_token,
    message_ids,
    normalize_message_id,
    normalize_subject,
    parse_subject_token,
)
from connectors.email.parse_text import new_part, signature_phones
from crm_core.events import Classification, Direction, EventKind, NormalizeError
from tests.unit.email.conftest import load, parse


def _mail(headers: str, body: str = "Hello", charset: str = "utf-8") -> bytes:
    head = headers.strip().replace("\n", "\r\n")
    return (
        f"{head}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + body.replace("\n", "\r\n").encode(charset)


# --- HTML sanitizing ---------------------------------------------------------------


def test_xss_message_is_sanitized_and_keeps_its_text() -> None:
    ev = parse("syn_xss_html.eml")
    html = ev.html or ""
    for bad in ("<script", "onerror", "onload", "javascript:", "<iframe", "<form", "<base",
                "http-equiv", "expression(", "<object", "<embed", "@import", "<svg", "<style",
                "data:text", "evil.example"):  # fmt: skip
        assert bad not in html.lower(), bad
    assert "<p>Обычный текст заявки: хочу купить 3 лицензии.</p>" in html
    assert "хочу купить 3 лицензии" in (ev.text or "")
    # Subject, name and filename stay text; escaping them is the renderer's job.
    assert ev.subject == "<img src=x onerror=alert('subject')> Заявка"
    assert ev.display_name == "<script>alert('name')</script>"
    (att,) = ev.attachments
    assert att.filename == "<img src=x onerror=alert(7)>.html"
    assert att.content_type == "text/html" and att.content == b"<script>alert(8)</script>"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('<img src="cid:logo@x">', '<img src="cid:logo@x">'),
        ('<img src="https://t.example/p.gif">', "<img>"),
        ('<a href="https://ok.example/">x</a>',
         '<a href="https://ok.example/" rel="noopener noreferrer nofollow">x</a>'),
        ('<a href="data:text/html,<script>">x</a>', '<a rel="noopener noreferrer nofollow">x</a>'),
        ('<p style="color:red;position:fixed">x</p>', '<p style="color:red">x</p>'),
        ('<p style="color:expression(alert(1))">x</p>', "<p>x</p>"),
        ("<b onclick=alert(1)>x</b>", "<b>x</b>"),
    ],
)  # fmt: skip
def test_sanitize_html_policy(source: str, expected: str) -> None:
    assert sanitize_html(source).html == expected


def test_remote_images_blocked_and_cid_images_kept() -> None:
    ev = parse("syn_mailing_list_bulk.eml")
    assert ev.meta["remote_images_blocked"] == 1
    assert ev.html == '<h1>Дайджест</h1><img height="1" width="1">'
    inline = parse("cw_inline_cid_images.eml")
    assert all(a.inline for a in inline.attachments)
    assert [a.filename for a in inline.attachments] == [
        "poster (8).jpg",
        "poster (7).jpg",
        "poster (1).jpg",
    ]


def test_html_to_text_keeps_block_lines() -> None:
    src = "<html><head><title>T</title><style>p{}</style></head><body><p>A &amp; B</p>C<br>D</body>"
    assert [ln for ln in html_to_text(src).splitlines() if ln] == ["A & B", "C", "D"]


# --- Charsets and encoded words ---------------------------------------------------


def test_cp1251_8bit_body_decoded() -> None:
    ev = parse("syn_ru_cp1251_8bit.eml")
    assert (ev.text or "").splitlines()[:2] == [
        "Здравствуйте!",
        "Прошу выставить счёт на 10 лицензий CRM «Бизнес».",
    ]
    assert ev.display_name == "Иван Петров"
    # ИНН 7701234567 is not taken for a phone; the signature phone is.
    assert ev.phones == ["+74951234567"]
    assert ev.meta["signature_phones"] == ["+74951234567"]


def test_koi8r_subject_and_base64_body() -> None:
    ev = parse("tb_koi8r_base64.eml")
    assert ev.subject == "Алфавит"
    assert ev.text == "Вопрос"


def test_utf8_quoted_printable_soft_breaks_and_split_word() -> None:
    ev = parse("syn_ru_utf8_qp_split_multibyte.eml")
    assert ev.subject == "Срочно: договор №15/2025 и акт сверки"
    assert (ev.text or "").count("Добрый день!") == 12
    assert "Подпишите, пожалуйста, договор." in (ev.text or "")


@pytest.mark.parametrize(
    ("raw_header", "expected_subject"),
    [
        (b"Subject: \xc7\xe0\xef\xf0\xee\xf1 \xf1\xf7\xb8\xf2\xe0", "Запрос счёта"),  # raw cp1251
        ("Subject: Запрос счёта".encode(), "Запрос счёта"),  # raw UTF-8
        (b"Subject: Gr\xfc\xdfe", "Grüße"),  # raw latin-1
        (b"Subject: =?koi8-r?B?8NLBytM=?=", "Прайс"),
    ],
)
def test_raw_8bit_headers(raw_header: bytes, expected_subject: str) -> None:
    raw = b"From: a@client.example\r\n" + raw_header + b"\r\n\r\nbody"
    assert parse_message(raw).subject == expected_subject


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=?UTF-8?Q?=D0=A1=D1=80=D0=BE=D1?= =?UTF-8?Q?=87=D0=BD=D0=BE?=", "Срочно"),
        ("=?UTF-8?B?0JfQsNC60LDQtw?=", "Заказ"),  # unpadded base64
        ("=?utf-8?q?=D0=9C=D0=B0=D1=80=D0=B8=D1=8F?=", "Мария"),  # lowercase q
        ("=?x-unknown-charset?B?0JjQstCw0L0=?=", "Иван"),  # unknown charset: guessed
        ("a =?UTF-8?B?bm8tZW5k", "a =?UTF-8?B?bm8tZW5k"),  # unterminated: left as is
        ("=?UTF-8?B?0JA=?= b =?UTF-8?B?0JE=?=", "А b Б"),  # text between words kept
    ],
)
def test_decode_header_text(value: str, expected: str) -> None:
    assert decode_header_text(value) == expected


def test_broken_encoded_words_message() -> None:
    ev = parse("syn_rfc2047_broken_words.eml")
    assert ev.subject == "Re: Заказзаказпоставка =?UTF-8?B?bm8tZW5k"
    assert ev.display_name == "Иван Петров"
    assert ev.meta["reply_to"] == ["maria@client.example"]
    assert ev.meta["to"] == ["sales@crm.example"]
    assert ev.text == "Тело письма."


def test_rfc2231_cyrillic_filenames() -> None:
    ev = parse("syn_attachments_cyrillic_rfc2231.eml")
    names = [a.filename for a in ev.attachments]
    assert names == [
        "Договор поставки №15 от 14.04.2025 (финальная редакция).pdf",
        "Договор поставки №15 от 14.04.2025 (финальная редакция).pdf",
        "Счёт №42.xlsx",
        "Прайс.txt",
    ]
    price = ev.attachments[3]
    assert price.content is not None and price.content.decode("koi8-r") == "Прайс-лист\n"
    assert price.sha256 == hashlib.sha256(price.content).hexdigest()
    assert ev.text == "Документы во вложении."


def test_rfc2231_latin1_filename() -> None:
    (att,) = parse("zb_rfc2231_latin1_filename.eml").attachments
    assert att.filename == "HasenundFrösche.txt" and att.size == 755


# --- Attachments ------------------------------------------------------------------


def test_attachment_over_limit_keeps_metadata_only() -> None:
    ev = parse("sp_large_491k_zip_attachment.eml", max_attachment_bytes=100_000)
    zip_att = next(a for a in ev.attachments if a.filename == "Payment Invoice.zip")
    assert zip_att.content is None and zip_att.size == 350899 and len(zip_att.sha256) == 64
    assert ev.meta["oversized_attachments"] == ["Payment Invoice.zip"]
    img = next(a for a in ev.attachments if a.filename == "img1.jpg")
    assert img.content is not None and len(img.content) == img.size == 5448


def test_attachment_path_separators_are_neutralized() -> None:
    raw = (
        b"From: a@client.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
        b'filename="../../etc/passwd"\r\n\r\nx\r\n--b--\r\n'
    )
    (att,) = parse_message(raw).attachments
    assert att.filename == "_.._etc_passwd"


# --- Identity, direction, ids -------------------------------------------------------


def test_external_id_is_normalized_message_id_or_hash() -> None:
    raw = _mail("From: a@client.example\nMessage-ID: <AbC.1@Client.EXAMPLE>")
    assert parse_message(raw).external_id == "AbC.1@client.example"
    raw = _mail("From: a@client.example\nSubject: x")
    ev1, ev2 = parse_message(raw), parse_message(raw)
    assert ev1.external_id == ev2.external_id == "sha256:" + stable_digest(raw)
    assert ev1.external_id.startswith("sha256:") and len(ev1.external_id) == 7 + 64
    assert ev1.kind == ev2.kind


NO_ID = (
    b"From: a@client.example\r\nSubject: x\r\nDate: Fri, 18 Apr 2025 09:00:00 +0300\r\n\r\nhi\r\n"
)
DELIVERED = [
    NO_ID,
    NO_ID.replace(b"\r\n", b"\n"),  # LF line endings (maildir, dovecot-lda input)
    b"Return-Path: <a@client.example>\r\nDelivered-To: desk@crm.example\r\n" + NO_ID,
    b"Received: from mx.client.example (mx [10.0.0.1])\r\n\tby mx.crm.example; "
    b"Fri, 18 Apr 2025 09:00:01 +0300\r\nX-Original-To: desk@crm.example\r\n" + NO_ID,
    b"From a@client.example Fri Apr 18 09:00:01 2025\n" + NO_ID.replace(b"\r\n", b"\n") + b"\n\n",
    NO_ID.replace(b"hi\r\n", b"hi  \r\n\r\n"),  # trailing blanks
]


@pytest.mark.parametrize("raw", DELIVERED, ids=["crlf", "lf", "lda", "received", "mbox", "tail"])
def test_hash_id_is_the_same_however_the_message_was_delivered(raw: bytes) -> None:
    assert parse_message(raw).external_id == "sha256:" + stable_digest(NO_ID)
    # the header a delivery adds below the sender's headers is part of the message
    changed = NO_ID.replace(b"Subject: x", b"Subject: y")
    assert parse_message(changed).external_id != parse_message(raw).external_id


def test_manager_copy_is_email_sent_with_recipient_identities() -> None:
    ev = parse("syn_thread_2_manager_reply.eml", own_addresses={"Manager1@CRM.example"})
    assert ev.kind is EventKind.EMAIL_SENT and ev.direction is Direction.OUTBOUND
    assert ev.identities == ("email:client@client.example",)
    assert ev.meta["signature_phones"] == []
    received = parse("syn_thread_2_manager_reply.eml", own_addresses=frozenset())
    assert received.kind is EventKind.EMAIL_RECEIVED
    assert received.identities == ("email:manager1@crm.example",)


def test_signature_phones_skip_quoted_lines() -> None:
    body = (
        "Договорились.\n\nС уважением,\nИван\nмоб. 8 (916) 555-12-34\n\n> тел. +7 495 111-22-33\n"
    )
    ev = parse_message(_mail("From: Иван <ivan@client.example>", body))
    assert ev.identities == ("email:ivan@client.example", "phone:+79165551234")
    assert ev.meta["preview"] == "Договорились. С уважением, Иван моб. 8 (916) 555-12-34"


def test_signature_phones_only_in_the_tail() -> None:
    lines = ["Позвоните 8 916 555 12 34"] + [f"строка {i}" for i in range(20)]
    assert signature_phones("\n".join(lines)) == []
    assert signature_phones("\n".join(lines[1:] + lines[:1])) == ["+79165551234"]


@pytest.mark.parametrize(
    ("text", "new"),
    [
        ("Ok\n\nOn Tue, 1 Apr 2025 at 10:00, A <a@x.example> wrote:\n> old", "Ok"),
        ("Ok\n\nOn Tue, 1 Apr 2025 at 10:00, A\n<a@x.example> wrote:\nold", "Ok"),
        ("Да\n\n-----Original Message-----\nFrom: A\nSent: B", "Да"),
        ("Да\n\n15.04.2025 10:00, Иван пишет:\n> ранее", "Да"),
        ("Да\n\nFrom: A <a@x.example>\nSent: Monday\nTo: B\nSubject: C\n\nold", "Да"),
        ("Да\n\n________________________________\nОт: A", "Да"),
    ],
)
def test_new_part_drops_quoted_history(text: str, new: str) -> None:
    assert new_part(text) == new


def test_missing_date_uses_received_at_then_received_header() -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    ev = parse("cw_no_date.eml", received_at=when)
    assert ev.occurred_at == when and "date" not in ev.meta
    raw = _mail("Received: from x by y; Tue, 15 Apr 2025 09:15:00 +0300\nFrom: a@client.example")
    ev = parse_message(raw)
    assert ev.occurred_at == datetime(2025, 4, 15, 6, 15, tzinfo=UTC)
    assert ev.meta["date_source"] == "received_header"


def test_malformed_addresses_are_listed_not_fatal() -> None:
    raw = _mail("From: a@client.example\nTo: good@client.example, not an address, x@\nCc: <>")
    ev = parse_message(raw)
    assert ev.meta["to"] == ["good@client.example"]
    assert ev.meta["malformed_addresses"] == ["not an address", "x@"]


def test_no_from_at_all() -> None:
    ev = parse_message(_mail("Subject: hi\nTo: sales@crm.example"))
    assert ev.identities == () and ev.display_name is None and ev.meta["from"] is None


# --- Threads ------------------------------------------------------------------------


def test_thread_1_to_4() -> None:
    t1, t2, t3, t4 = (
        parse(f"syn_thread_{n}.eml")
        for n in ("1_initial", "2_manager_reply", "3_client_reply", "4_reply_lost_references")
    )
    assert t1.external_id == "thread-1@client.example" and t1.thread_refs == ()
    assert t2.thread_refs == ("thread-1@client.example",)
    assert t2.meta["in_reply_to"] == "thread-1@client.example"
    assert t3.thread_refs == ("thread-1@client.example", "thread-2@crm.example")
    assert t3.meta["in_reply_to"] == "thread-2@crm.example"
    assert t3.meta["preview"] == "Спасибо, согласны. Счёт?"
    assert t4.thread_refs == () and t4.meta["in_reply_to"] is None
    assert "subject_token" not in t4.meta
    # The fallback when the headers are lost: the normalized subject of the thread.
    subjects = {t.meta["thread_subject"] for t in (t1, t2, t3, t4)}
    assert subjects == {"поставка оборудования"}


@pytest.mark.parametrize(
    ("subject", "token"),
    [
        ("Re: КП [#D-123]", {"kind": "deal", "id": 123}),
        ("[#L-45] Заявка", {"kind": "lead", "id": 45}),
        ("Ответ: RE: счёт [#c-7]", {"kind": "client", "id": 7}),
        ("Re: [# D-9 ]", {"kind": "deal", "id": 9}),
        ("Re: [#X-1] nothing", None),
        ("#D-123 without brackets", None),
    ],
)
def test_subject_token(subject: str, token: dict[str, object] | None) -> None:
    assert parse_subject_token(subject) == token
    raw = _mail("From: c@client.example\nSubject: " + subject)
    assert parse_message(raw).meta.get("subject_token") == token


def test_subject_token_round_trip_and_normalized_subject() -> None:
    token = format_subject_token("deal", 123)
    assert token == "[#D-123]"
    assert parse_subject_token(f"Re: Счёт {token}") == {"kind": "deal", "id": 123}
    assert normalize_subject(f"Ответ: RE: Fwd: Счёт {token}") == "счёт"


def test_message_id_lists() -> None:
    value = "<a@X.example>, <a@x.example> <b@y.example>\r\n <test-reference-id>"
    assert message_ids(value) == ["a@x.example", "b@y.example", "test-reference-id"]
    assert normalize_message_id("no brackets@Host") is None
    assert normalize_message_id(" <id@Host> trailing") == "id@host"


# --- Classification -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "addresses", "status"),
    [
        ("cw_bounce_no_from.eml", ["noreply@example-service.com"], "5.7.1"),
        ("fl_bounce_mailbox_full.eml", ["user@aol.com"], "5.2.2"),
        ("sp_bounce_malformed.eml", ["abh@netpar.com.br"], "4.2.2"),
    ],
)
def test_bounce_addresses(name: str, addresses: list[str], status: str) -> None:
    ev = parse(name)
    assert ev.classification is Classification.BOUNCE
    assert ev.meta["bounced_addresses"] == addresses
    assert ev.meta["bounce_status"] == status
    assert ev.emails == []  # mailer-daemon is nobody's contact point


def test_bounce_links_the_returned_message() -> None:
    ev = parse("fl_bounce_mailbox_full.eml")
    assert ev.meta["bounced_message_id"] == "4E326A95.3010907@example.com"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("Auto-Submitted: auto-replied", Classification.AUTO_REPLY),
        ("Auto-Submitted: no", Classification.REGULAR),
        ("X-Autorespond: 1", Classification.AUTO_REPLY),
        ("Precedence: auto_reply", Classification.AUTO_REPLY),
        ("Subject: Автоответ: Re: счёт", Classification.AUTO_REPLY),
        ("Subject: Automatic reply: Invoice", Classification.AUTO_REPLY),
        ("Subject: Re: automatic reply settings question", Classification.REGULAR),
        ("Precedence: list", Classification.BULK),
        ("Precedence: junk", Classification.BULK),
        ("List-Unsubscribe: <mailto:u@list.example>", Classification.BULK),
        ("Precedence: bulk\nX-Autoreply: yes", Classification.AUTO_REPLY),
    ],
)
def test_classification_headers(headers: str, expected: Classification) -> None:
    raw = _mail("From: c@client.example\n" + headers)
    assert parse_message(raw).classification is expected


def test_mailer_daemon_without_dsn_is_bounce_by_subject() -> None:
    raw = _mail("From: MAILER-DAEMON@mx.example\nSubject: failure notice")
    assert parse_message(raw).classification is Classification.BOUNCE


# --- Not a message at all -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"", b"   \r\n", b"\x00\x01\x02\xff\xfe junk", b"just some text\nwithout headers\n"]
)
def test_not_an_email_raises_normalize_error(raw: bytes) -> None:
    with pytest.raises(NormalizeError) as info:
        parse_message(raw)
    assert info.value.field == "raw"


def test_bytearray_and_memoryview_accepted() -> None:
    raw = load("tb_koi8r_base64.eml")
    assert parse_message(bytearray(raw)).subject == "Алфавит"
    assert parse_message(memoryview(raw)).raw == raw
