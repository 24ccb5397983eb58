"""normalize_form + parse_body on every stored payload variant (tests/fixtures/forms)."""

from __future__ import annotations

import html.parser
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.webforms import FormSpec, dry_run, normalize_form, parse_body, parse_body_full
from connectors.webforms.aliases import canonical_of
from connectors.webforms.dry_run import guess_content_type
from crm_core.events import Channel, Classification, EventKind, NormalizeError
from tests.support.webforms import FIXTURES, fixture_bytes

NOW = datetime(2026, 3, 2, 9, 15, 20, tzinfo=UTC)
CT = {
    "urlencoded": "application/x-www-form-urlencoded",
    "json": "application/json",
    "multipart": "multipart/form-data",  # boundary detected from the body
}
FORM = FormSpec(key="site", name="")

# file, content type, expected event fields (meta keys checked one by one)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "tilda_02_lead.urlencoded.txt",
        "urlencoded",
        {
            "external_id": "467251:8442970",
            "identities": ["phone:+79165551234", "email:anna@example.com"],
            "display_name": "Анна Петрова",
            "text": "Хочу демо CRM",
            "subject": None,
            "classification": "regular",
            "meta.platform": "tilda",
            "meta.idempotency": "tranid",
            "meta.form_id": "form289442497",
            "meta.fields": {"Checkbox": "yes"},
            "meta.utm": {
                "utm_source": "yandex",
                "utm_medium": "cpc",
                "utm_campaign": "crm_autumn",
                "utm_term": "crm для салона",
            },
        },
    ),
    (
        "tilda_02_lead.parsed.json",
        "json",
        {
            "external_id": "467251:8442970",
            "identities": ["phone:+79165551234", "email:anna@example.com"],
            "display_name": "Анна Петрова",
            "meta.utm": {
                "utm_source": "yandex",
                "utm_medium": "cpc",
                "utm_campaign": "crm_autumn",
                "utm_term": "crm для салона",
            },
        },
    ),
    (
        "elementor_01_simple.urlencoded.txt",
        "urlencoded",
        {
            "identities": ["phone:+79165551234", "email:ivan@example.com"],
            "display_name": "Иван",
            "text": "Перезвоните",
            "subject": "Contact Form",
            "classification": "regular",
            "meta.platform": "elementor",
            "meta.form_id": "a1b2c3d",
            "meta.form_name": "Contact Form",
            "meta.idempotency": "hash",
            "meta.utm": {},
        },
    ),
    (
        "elementor_02_advanced.urlencoded.txt",
        "urlencoded",
        {
            "identities": ["phone:+74951234567", "email:olga@example.ru"],
            "display_name": "Ольга",
            "subject": "Заявка с главной",
            "text": None,
            "classification": "regular",
            "meta.platform": "elementor",
            "meta.form_id": "e7f1a2b",
            "meta.phone_extensions": {"+74951234567": "204"},
            "meta.page_url": "https://example.com/?utm_source=google&utm_medium=cpc&utm_campaign=brand",
            "meta.utm": {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand"},
            "meta.fields": {
                "Город": "Казань",
                "date": "29.05.2024",
                "time": "13:28",
                "user_agent": "Mozilla/5.0",
                "remote_ip": "203.0.113.7",
            },
        },
    ),
    (
        "cf7_to_webhook.json",
        "json",
        {
            "identities": ["phone:+79165551234", "email:maria@example.com"],
            "display_name": "Мария",
            "subject": "Заявка",
            "text": "Нужна консультация",
            "meta.platform": "cf7",
            "meta.utm": {"utm_source": "google"},
            "meta.fields": {"checkbox-services": ["Доставка", "Монтаж"], "acceptance-1": "1"},
        },
    ),
    (
        "generic_02_post.urlencoded.txt",
        "urlencoded",
        {
            "identities": ["phone:+79165551234", "email:s@example.com"],
            "display_name": "Сергей",
            "text": "Добрый день",
            "classification": "regular",
            "meta.platform": "generic",
            "meta.referrer": "https://vk.com/",
            "meta.utm": {"utm_source": "vk", "utm_medium": "social", "utm_campaign": "spring"},
            "meta.fields": None,  # form_token dropped, empty honeypot/utm dropped
        },
    ),
    (
        "generic_03_multipart.txt",
        "multipart",
        {
            "identities": ["phone:+79165551234", "phone:+74951234567", "email:dima@example.org"],
            "display_name": "Дмитрий",
            "text": "Прайс во вложении",
            "classification": "regular",
            "meta.content_type": "multipart",
            "meta.files": ["attachment: price.pdf"],
        },
    ),
    (
        "generic_04_spam_honeypot.urlencoded.txt",
        "urlencoded",
        {
            "identities": [],
            "classification": "spam",
            "meta.spam": {"honeypot": "website"},
            "meta.invalid": {
                "phone": "phone '+1 555 0100' is not a valid number (not a valid phone number)"
            },
        },
    ),
    (
        "generic_05_no_contacts.urlencoded.txt",
        "urlencoded",
        {
            "identities": [],
            "display_name": "Аноним",
            "text": "Перезвоните мне",
            "classification": "needs_review",
            "meta.invalid": {
                "phone": "phone '12345' is not a valid number (not a valid phone number)",
                "email": "email 'not-an-email' is not valid: An email address must have an @-sign.",
            },
        },
    ),
    (
        "google_forms_apps_script.json",
        "json",
        {
            "external_id": "2_ABaOnud...",
            "identities": ["phone:+375291234567"],
            "display_name": "Пётр",
            "text": "Интересует интеграция",
            "classification": "regular",
            "meta.platform": "google_forms",
            "meta.idempotency": "responseid",
            "meta.form_id": "1FAIpQLSe...formId",
            "meta.fields": {"source": "google_forms", "timestamp": "2024-05-29T13:28:20.000Z"},
        },
    ),
]


@pytest.mark.parametrize(("name", "ctype", "expected"), CASES, ids=[c[0] for c in CASES])
def test_fixture_normalizes(name: str, ctype: str, expected: dict[str, Any]) -> None:
    parsed = parse_body_full(fixture_bytes(name), CT[ctype])
    event = normalize_form(
        parsed.fields, form=FORM, content_type=parsed.kind, received_at=NOW, files=parsed.files
    )
    out = event.to_json()
    assert out["channel"] == "webform"
    assert out["kind"] == "form_submitted"
    assert out["source"] == "site"
    assert out["occurred_at"] == "2026-03-02T09:15:20+00:00"
    for key, value in expected.items():
        if key.startswith("meta."):
            assert out["meta"].get(key[5:]) == value, key
        else:
            assert out[key] == value, key


def test_every_payload_fixture_is_covered() -> None:
    payloads = {p.name for p in FIXTURES.iterdir() if p.suffix in (".txt", ".json")}
    covered = {c[0] for c in CASES} | {"tilda_01_test_request.txt"}
    assert payloads == covered


def test_tilda_handshake_is_an_ignored_event() -> None:
    fields = parse_body(fixture_bytes("tilda_01_test_request.txt"), CT["urlencoded"])
    assert fields == {"test": "test"}
    event = normalize_form(fields, form=FORM, received_at=NOW)
    assert event.kind is EventKind.IGNORED
    assert event.meta["handshake"] is True
    assert event.identities == ()


def test_hash_id_is_stable_within_the_minute_and_changes_after() -> None:
    fields = parse_body(fixture_bytes("generic_02_post.urlencoded.txt"), CT["urlencoded"])
    a = normalize_form(fields, form=FORM, received_at=NOW)
    b = normalize_form(fields, form=FORM, received_at=NOW + timedelta(seconds=30))
    c = normalize_form(fields, form=FORM, received_at=NOW + timedelta(minutes=1))
    other_form = normalize_form(fields, form=FormSpec(key="other"), received_at=NOW)
    assert a.external_id == b.external_id
    assert a.external_id.startswith("site:") and len(a.external_id) == len("site:") + 32
    assert c.external_id != a.external_id
    assert other_form.external_id != a.external_id
    token_changed = {**fields, "form_token": "another"}  # volatile: not part of the hash
    assert normalize_form(token_changed, form=FORM, received_at=NOW).external_id == a.external_id


def test_idempotency_key_wins_and_is_scoped_by_form() -> None:
    fields = parse_body(fixture_bytes("tilda_02_lead.urlencoded.txt"), CT["urlencoded"])
    event = normalize_form(fields, form=FORM, received_at=NOW, idempotency_key="abc-1")
    assert event.external_id == "site:abc-1"
    assert event.meta["idempotency"] == "key"


def test_per_form_aliases_and_russian_labels() -> None:
    form = FormSpec(key="b2b", name="Заявка B2B", aliases={"Контакт": "phone", "Кто вы": "name"})
    fields = {
        "Кто вы": "  Иван   Иванов ",
        "Контакт": "8 916 555 12 34 доб. 12",
        "Эл. почта": "IVAN@Example.RU",
        "Компания": "ООО Ромашка",
        "ИНН": "7707083893",
        "Вопрос": "Сколько стоит?",
        "Город": "Тверь",
    }
    event = normalize_form(fields, form=form, received_at=NOW, remote_ip="198.51.100.4")
    assert event.identities == ("phone:+79165551234", "email:ivan@example.ru")
    assert event.display_name == "Иван Иванов"
    assert event.subject == "Заявка B2B"
    assert event.text == "Сколько стоит?"
    assert event.meta["company"] == "ООО Ромашка"
    assert event.meta["inn"] == "7707083893"
    assert event.meta["phone_extensions"] == {"+79165551234": "12"}
    assert event.meta["fields"] == {"Город": "Тверь"}
    assert event.meta["remote_ip"] == "198.51.100.4"


def test_first_and_last_name_are_joined() -> None:
    event = normalize_form(
        {"first_name": "Anna", "last_name": "Smith", "E-mail": "a@b.co"}, received_at=NOW
    )
    assert event.display_name == "Anna Smith"
    assert event.emails == ["a@b.co"]
    assert event.source == "unknown"


@pytest.mark.parametrize(
    ("key", "canonical"),
    [
        ("Name", "name"),
        ("fio", "name"),
        ("your-name", "name"),
        ("ФИО", "name"),
        ("Ваше имя", "name"),
        ("Phone", "phone"),
        ("tel-123", "phone"),
        ("Телефон", "phone"),
        ("mobile", "phone"),
        ("E-mail", "email"),
        ("your-email", "email"),
        ("Почта", "email"),
        ("Эл. почта", "email"),
        ("Comments", "comment"),
        ("your-message", "comment"),
        ("Сообщение", "comment"),
        ("Комментарий", "comment"),
        ("Вопрос", "comment"),
        ("your-subject", "subject"),
        ("Организация", "company"),
        ("ИНН", "inn"),
        ("UTM_Source", "utm_source"),
        ("answers.Телефон", "phone"),
        ("Город", None),
        ("checkbox-services", None),
    ],
)
def test_builtin_aliases(key: str, canonical: str | None) -> None:
    assert canonical_of(key) == canonical


class _Inputs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = dict(attrs).get("name")
        if tag in ("input", "textarea") and name:
            self.names.append(name)


def test_generic_html_form_fields_all_map() -> None:
    parser = _Inputs()
    parser.feed((FIXTURES / "generic_01_html_form.html").read_text())
    mapped = {n: canonical_of(n) for n in parser.names}
    assert mapped == {
        "name": "name",
        "phone": "phone",
        "email": "email",
        "message": "comment",
        "website": None,
        "form_token": None,
        "utm_source": "utm_source",
        "utm_medium": "utm_medium",
        "utm_campaign": "utm_campaign",
        "utm_content": "utm_content",
        "utm_term": "utm_term",
        "page_url": "page_url",
        "referrer": "referrer",
    }
    assert "website" in FORM.honeypot_fields


def test_custom_honeypot_field() -> None:
    form = FormSpec(key="f", honeypot_fields=("fax",))
    event = normalize_form({"phone": "89165551234", "fax": "x"}, form=form, received_at=NOW)
    assert event.classification is Classification.SPAM
    legit = normalize_form(
        {"phone": "89165551234", "website": "example.com"}, form=form, received_at=NOW
    )
    assert legit.classification is Classification.REGULAR
    assert legit.meta["fields"] == {"website": "example.com"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [({}, "body"), ({"name": "", "phone": "  "}, "body")],
)
def test_empty_submission_is_rejected(fields: dict[str, str], field: str) -> None:
    with pytest.raises(NormalizeError) as info:
        normalize_form(fields, received_at=NOW)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("body", "ctype", "field", "message"),
    [
        (b"{bad json", "application/json", "body", "body is not valid JSON"),
        (b"[1, 2]", "application/json", "body", "JSON body must be an object, got list"),
        (b"name=%FF%FE", "application/x-www-form-urlencoded", "body", "a %-escape is not valid"),
        (b"\xff\xfe\x00", "application/json", "body", "body is not valid utf-8"),
        (b"x", "application/xml", "Content-Type", "unsupported Content-Type"),
        (b"no boundary here", "multipart/form-data", "Content-Type", "multipart body without"),
        (b"[" * 100_000, "application/json", "body", "JSON nested too deeply"),
    ],
)
def test_malformed_bodies(body: bytes, ctype: str, field: str, message: str) -> None:
    with pytest.raises(NormalizeError) as info:
        parse_body(body, ctype)
    assert info.value.field == field
    assert str(info.value).startswith(message)


def test_json_flattening_and_lists() -> None:
    body = '{"a": {"b": {"c": 1}}, "tags": ["x", true, null], "rows": [{"k": "v"}], "n": 2.5}'
    assert parse_body(body.encode(), "application/json; charset=utf-8") == {
        "a.b.c": "1",
        "tags": ["x", "true", ""],
        "rows.0.k": "v",
        "n": "2.5",
    }


def test_urlencoded_repeated_keys_become_lists() -> None:
    parsed = parse_body_full(b"s[]=a&s[]=b&x=1&x=2&y=", "application/x-www-form-urlencoded")
    assert parsed.fields == {"s": ["a", "b"], "x": ["1", "2"], "y": ""}
    assert parsed.kind == "urlencoded"


def test_text_plain_is_sniffed() -> None:
    assert parse_body(b'{"phone": "89165551234"}', "text/plain") == {"phone": "89165551234"}
    assert parse_body(b"phone=89165551234", "") == {"phone": "89165551234"}


@pytest.mark.parametrize(
    ("name", "ctype", "external_id", "kind"),
    [
        ("tilda_02_lead.urlencoded.txt", "urlencoded", "467251:8442970", "form_submitted"),
        ("google_forms_apps_script.json", "json", "2_ABaOnud...", "form_submitted"),
        ("generic_03_multipart.txt", "multipart", None, "form_submitted"),
        ("tilda_01_test_request.txt", "urlencoded", "cli:tilda-test", "ignored"),
    ],
)
def test_dry_run(name: str, ctype: str, external_id: str | None, kind: str) -> None:
    out = dry_run(str(FIXTURES / name), content_type=ctype, form_key="cli")
    assert out["channel"] == Channel.WEBFORM.value
    assert out["kind"] == kind
    assert out["source"] == "cli"
    if external_id is not None:
        assert out["external_id"] == external_id
    for key in ("identities", "display_name", "subject", "text", "meta", "classification"):
        assert key in out


def test_dry_run_multipart_with_unix_line_ends(tmp_path: Any) -> None:
    body = fixture_bytes("generic_03_multipart.txt").replace(b"\r\n", b"\n")
    path = tmp_path / "form.txt"
    path.write_bytes(body)
    out = dry_run(str(path), content_type="multipart")
    assert out["identities"][0] == "phone:+79165551234"
    assert out["meta"]["files"] == ["attachment: price.pdf"]


@pytest.mark.parametrize(
    ("content", "ctype", "field"),
    [(None, "json", "file"), (b"[]", "json", "body"), (b"a=1", "xml", "content_type")],
)
def test_dry_run_errors(tmp_path: Any, content: bytes | None, ctype: str, field: str) -> None:
    path = tmp_path / "payload"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(NormalizeError) as info:
        dry_run(str(path), content_type=ctype)
    assert info.value.field == field
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "kind", "identity"),
    [
        ("cf7_to_webhook.json", "json", "phone:+79165551234"),
        ("google_forms_apps_script.json", "json", None),
        ("generic_03_multipart.txt", "multipart", "phone:+79165551234"),
        ("tilda_02_lead.urlencoded.txt", "urlencoded", None),
        ("elementor_01_simple.urlencoded.txt", "urlencoded", None),
    ],
)
def test_dry_run_guesses_the_content_type(name: str, kind: str, identity: str | None) -> None:
    """``crmhub ingest form FILE`` without ``--content-type``: the body tells."""
    assert guess_content_type(fixture_bytes(name)) == kind
    out = dry_run(str(FIXTURES / name))
    assert out["meta"]["content_type"] == kind
    assert out["identities"], out
    if identity is not None:
        assert identity in out["identities"]
