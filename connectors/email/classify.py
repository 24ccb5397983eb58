"""Classification of inbound mail: regular, auto-reply (also ARF spam complaints), bounce,
bulk (pure).

Order matters: a bounce usually also carries ``Auto-Submitted``, and an
auto-reply may carry ``Precedence: bulk``; the more specific class wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from connectors.email.parse_headers import raw_header
from crm_core.events import Classification

__all__ = ["Verdict", "classify"]

_DAEMONS = {"mailer-daemon", "postmaster", "mail-daemon", "maildaemon", "mailerdaemon"}
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status notification|failure|has failed|failed)|returned mail"
    r"|failure notice|mail delivery failed|delivery problem|non[- ]?delivery"
    r"|не доставлено|недоставленное|не удалось доставить|ошибка доставки",
    re.IGNORECASE,
)
_OOO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[- ]?(?:reply|response|answer)|autoreply|auto:|out of (?:the )?office"
    r"|ooo\b|abwesenheitsnotiz|r[ée]ponse automatique|автоответ|автоматический ответ"
    r"|нет на месте|в отпуске|отсутствую)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Verdict:
    classification: Classification
    signals: tuple[str, ...]  # the headers/heuristics that decided it


def _h(msg: Message, name: str) -> str:
    return (raw_header(msg, name) or "").strip().lower()


def classify(
    msg: Message, *, from_address: str | None, subject: str | None, has_dsn: bool
) -> Verdict:
    ctype = "text/plain"
    report_type = ""
    try:
        ctype = msg.get_content_type().lower()
        report_type = str(msg.get_param("report-type", "") or "").lower()
    except Exception:
        pass
    local = (from_address or "").partition("@")[0].lower()

    if ctype == "multipart/report" and report_type == "feedback-report":
        # A mail provider's spam complaint (ARF): machine mail, no lead; the pipeline
        # suppresses the complained address (crm_core.pipeline.complaints).
        return Verdict(
            Classification.AUTO_REPLY, ("multipart/report; report-type=feedback-report",)
        )
    bounce: list[str] = []
    if ctype == "multipart/report" and report_type == "delivery-status":
        bounce.append("multipart/report; report-type=delivery-status")
    if has_dsn:
        bounce.append("message/delivery-status part")
    if not bounce and (local in _DAEMONS or (not from_address and _h(msg, "Return-Path") == "<>")):
        if _BOUNCE_SUBJECT.search(subject or ""):
            bounce.append(f"From {local or 'empty'} with a delivery-failure subject")
    if bounce:
        return Verdict(Classification.BOUNCE, tuple(bounce))

    auto: list[str] = []
    submitted = _h(msg, "Auto-Submitted")
    if submitted and not submitted.startswith("no"):
        auto.append(f"Auto-Submitted: {submitted}")
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        value = _h(msg, name)
        if raw_header(msg, name) is not None and value not in ("no", "false", "0"):
            auto.append(name)
    precedence = _h(msg, "Precedence")
    if precedence == "auto_reply":
        auto.append("Precedence: auto_reply")
    if ctype == "multipart/report" and report_type == "disposition-notification":
        auto.append("read receipt (disposition-notification)")
    if not auto and _OOO_SUBJECT.search(subject or ""):
        auto.append("out-of-office subject")
    if auto:
        return Verdict(Classification.AUTO_REPLY, tuple(auto))

    bulk: list[str] = []
    if raw_header(msg, "List-Id") is not None:
        bulk.append("List-Id")
    if raw_header(msg, "List-Unsubscribe") is not None:
        bulk.append("List-Unsubscribe")
    if precedence in ("bulk", "list", "junk"):
        bulk.append(f"Precedence: {precedence}")
    if bulk:
        return Verdict(Classification.BULK, tuple(bulk))
    return Verdict(Classification.REGULAR, ())
