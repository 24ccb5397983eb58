"""Every recorded message against what ``index.json`` says a CRM must make of it."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.email.dry_run import dry_run
from crm_core.events import Classification, Direction, EventKind
from tests.unit.email.conftest import FIXTURES, INDEX, parse

# The attachment count of chatwoot's multiple_attachments.eml in index.json (4) is
# chatwoot's own cap, not the message: it holds 30 attachment parts (15 names, twice).
ATTACHMENT_COUNT_OVERRIDES = {"cw_multiple_attachments.eml": 30}
# Keys that describe what the pipeline/UI does later, not what the parser returns.
INFORMATIONAL = {
    "note",
    "subject_note",
    "send_autoresponse",
    "flag",
    "escape_when_rendering",
    "html_attachment",
    "inline_images",
    "thread",
    "contact_from",
    "must_not_crash",
}
HANDLED = {
    "is_auto_reply",
    "is_bounce",
    "is_bulk",
    "create_lead",
    "create_contact",
    "thread_by",
    "attachments",
    "attachment_filename",
    "filename_startswith",
    "subject",
    "subject_startswith",
    "subject_lang",
    "from_email",
    "from_name",
    "body_text",
    "body_text_nonempty",
    "in_reply_to",
    "to",
    "to_count",
    "date",
    "direction",
    "reply_to",
    "must_not_match_contact",
    "sanitized_html_must_not_contain",
    "text_must_contain",
    "block_remote_images",
    "lead",
}
RECEIVED_AT = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)


def _ids(entry: dict[str, Any]) -> str:
    return str(entry["file"])


def test_index_covers_every_fixture() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.eml")}
    assert on_disk == {e["file"] for e in INDEX}
    assert len(on_disk) == 42


@pytest.mark.parametrize("entry", INDEX, ids=_ids)
def test_fixture_matches_index(entry: dict[str, Any]) -> None:
    expect: dict[str, Any] = entry["expect"]
    unknown = set(expect) - HANDLED - INFORMATIONAL
    assert not unknown, f"index.json expectation keys not checked: {unknown}"
    ev = parse(entry["file"], received_at=RECEIVED_AT)
    meta = ev.meta
    names = [a.filename for a in ev.attachments]

    if expect.get("is_auto_reply"):
        assert ev.classification is Classification.AUTO_REPLY
    if expect.get("is_bounce"):
        assert ev.classification is Classification.BOUNCE
    if expect.get("is_bulk"):
        assert ev.classification is Classification.BULK
    if expect.get("create_lead") is True:
        assert ev.classification is Classification.REGULAR
        assert ev.kind is EventKind.EMAIL_RECEIVED
        assert ev.emails, "a lead needs a sender identity"
    if expect.get("create_lead") is False and ev.classification is Classification.REGULAR:
        # Only a reply may be regular and still create no lead: it joins its thread.
        assert ev.thread_refs or meta["thread_subject"] != (ev.subject or "").casefold()
    if expect.get("create_contact") is False:
        assert ev.emails == []

    if "thread_by" in expect:
        want = re.search(r"<([^>]+)>", expect["thread_by"])
        assert want is not None
        assert want.group(1) in ev.thread_refs
        if expect["thread_by"].startswith("In-Reply-To"):
            assert meta["in_reply_to"] == want.group(1)
    if "in_reply_to" in expect:
        assert meta["in_reply_to"] == expect["in_reply_to"]

    count = expect.get("attachments")
    if isinstance(count, int):
        assert len(ev.attachments) == ATTACHMENT_COUNT_OVERRIDES.get(entry["file"], count)
    elif isinstance(count, list):
        assert names == count
    elif isinstance(count, str) and count.startswith(">="):
        assert len(ev.attachments) >= int(count[2:])
    elif count == "generate fallback names":
        assert len(names) == 2 and all(names) and len(set(names)) == 2
        assert names == ["attachment-1.png", "attachment-2.png"]
    if "attachment_filename" in expect:
        assert expect["attachment_filename"] in names
    if "filename_startswith" in expect:
        assert any(n.startswith(expect["filename_startswith"]) for n in names)

    if "subject" in expect:
        assert ev.subject == expect["subject"]
    if "subject_startswith" in expect:
        assert (ev.subject or "").startswith(expect["subject_startswith"])
    if expect.get("subject_lang") == "ar":
        assert ev.subject == "أهلين عميلنا الكريم"
        assert all(unicodedata.bidirectional(c) in ("AL", "WS") for c in ev.subject)
    if "from_email" in expect:
        assert meta["from"] == expect["from_email"]
        assert ev.identities[0] == f"email:{expect['from_email']}"
    if "from_name" in expect:
        assert ev.display_name == expect["from_name"].split(" (")[0]
    if "must_not_match_contact" in expect:
        assert f"email:{expect['must_not_match_contact']}" not in ev.identities
        assert meta.get("display_name_mismatch") is True
    if "reply_to" in expect:
        assert meta["reply_to"] == [expect["reply_to"]]

    if "body_text" in expect:
        wanted = [ln for ln in expect["body_text"].split("\\n")]
        wanted[-1] = wanted[-1].split(" (")[0]  # drop the "(derive ...)" remark
        lines = [ln.strip() for ln in (ev.text or "").splitlines() if ln.strip()]
        assert lines == wanted
    if expect.get("body_text_nonempty"):
        assert (ev.text or "").strip()
    if "to" in expect:
        assert meta["to"] == expect["to"]
    if "to_count" in expect:
        assert len(meta["to"]) == expect["to_count"]
    if "date" in expect:  # no Date header: the IMAP INTERNALDATE is used
        assert ev.occurred_at == RECEIVED_AT
        assert meta["date_source"] == "received_at"
    if expect.get("direction") == "outbound":
        assert ev.kind is EventKind.EMAIL_SENT and ev.direction is Direction.OUTBOUND

    html = (ev.html or "").lower()
    for bad in expect.get("sanitized_html_must_not_contain", []):
        assert bad.lower() not in html
    if "text_must_contain" in expect:
        assert expect["text_must_contain"] in (ev.text or "")
    if expect.get("block_remote_images"):
        assert "https://t.list.example" not in html
        assert meta["remote_images_blocked"] == 1
    if "lead" in expect and "phone" in expect["lead"]:
        assert f"phone:{expect['lead']['phone']}" in ev.identities


@pytest.mark.parametrize("entry", INDEX, ids=_ids)
def test_fixture_agrees_with_stdlib_where_stdlib_is_right(entry: dict[str, Any]) -> None:
    """Decoded subject equals the stdlib's (stripped) wherever the stdlib did not give up."""
    std = entry["stdlib_policy_default"]
    ev = parse(entry["file"])
    if "\ufffd" not in std["subject"]:
        assert ev.subject == " ".join(std["subject"].split())
    std_names = [n for n in std["attachments"] if n]
    if std_names and len(std_names) == len(std["attachments"]):
        ours = [a.filename for a in ev.attachments if a.content_type != "message/rfc822"]
        assert ours == std_names


@pytest.mark.parametrize("entry", INDEX, ids=_ids)
def test_dry_run_is_json_and_sanitized(entry: dict[str, Any]) -> None:
    out = dry_run(str(FIXTURES / entry["file"]))
    text = json.dumps(out, ensure_ascii=False)
    assert "raw" not in out
    assert out["channel"] == "email"
    assert out["classification"] in {"regular", "auto_reply", "bounce", "bulk"}
    assert set(out) >= {"subject", "identities", "thread_refs", "attachments", "html", "text"}
    for att in out["attachments"]:
        assert set(att) >= {"filename", "size", "content_type"} and "content" not in att
    html = (out["html"] or "").lower()
    for bad in ("<script", "onerror", "onload", "javascript:", "<iframe", "<object", "<embed"):
        assert bad not in html
    assert isinstance(json.loads(text), dict)
