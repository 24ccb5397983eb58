"""``crmhub ingest ami TRANSCRIPT`` without ``--dry-run``: the recorded calls go through
the pipeline into a temporary SQLite database (``gateway.cli.main``)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm_core.db import Database
from crm_core.models import InboxEvent, Interaction, Lead, Task
from gateway.cli import main
from tests.support.ami_truth import AMI_FIXTURES, expected_calls


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    for name in list(os.environ):
        if name.upper().startswith("CRMHUB_"):
            monkeypatch.delenv(name)
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    cfg = tmp_path / "crmhub.toml"
    cfg.write_text(
        f'database_url = "{url}"\n'
        f'routing_rules_path = "{tmp_path / "none.yaml"}"\n'
        f'attachments_dir = "{tmp_path / "att"}"\n'
        "[[asterisk]]\n"
        'name = "office"\n'
        'username = "crm"\n'
        'secret = "s"\n'
        'inbound_contexts = ["from-pstn"]\n'
        'trunk_channel_patterns = ["PJSIP/trunk-*"]\n'
        'recording_url_template = "https://rec.example.ru/{linkedid}.wav"\n',
        encoding="utf-8",
    )
    return cfg, url


def _fetch(url: str, model: Any) -> list[Any]:
    async def run() -> list[Any]:
        db = Database(url)
        try:
            async with db.sessions() as s:
                return list(await s.scalars(select(model).order_by(model.id)))
        finally:
            await db.dispose()

    return asyncio.run(run())


def _ingest(cfg: Path, name: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    code = main(["--config", str(cfg), "ingest", "ami", str(AMI_FIXTURES / name)])
    out = capsys.readouterr().out.splitlines()
    lines = [json.loads(x) for x in out if x.startswith("{")]  # pipeline logs share stdout
    assert code == 0, lines
    return lines


def test_ingest_ami_transcripts_through_the_pipeline(
    config: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, url = config
    assert main(["--config", str(cfg), "users", "add", "op@example.ru", "--role", "manager",
                 "--extension", "103"]) == 0  # fmt: skip
    capsys.readouterr()
    lines = _ingest(cfg, "b_inbound_missed_noanswer.ami", capsys)
    assert [x["kind"] for x in lines] == ["call_started", "call_missed", "call_ended"]
    assert all(x["result"]["status"] == "processed" for x in lines)
    assert {x["external_id"] for x in lines} == {f"office:{lines[0]['meta']['linkedid']}"}

    (lead,) = _fetch(url, Lead)
    assert lead.source == "call" and lead.source_ref == "office"
    (task,) = _fetch(url, Task)
    assert task.kind == "call_back" and task.status == "open" and task.lead_id == lead.id
    (missed,) = _fetch(url, Interaction)
    assert missed.outcome == "missed" and missed.lead_id == lead.id and missed.ring_s == 10

    # The same transcript again is a redelivery: acknowledged, nothing new.
    again = _ingest(cfg, "b_inbound_missed_noanswer.ami", capsys)
    assert all(x["result"]["duplicate"] for x in again)
    assert len(_fetch(url, Interaction)) == 1 and len(_fetch(url, InboxEvent)) == 3

    # An answered inbound call from another number: its own lead, no recording link.
    lines = _ingest(cfg, "a_inbound_answered.ami", capsys)
    exp = expected_calls("a_inbound_answered")[0]
    ended = lines[-1]["meta"]
    assert ended["outcome"] == "answered" and ended["caller"] == exp["caller"]
    inters = _fetch(url, Interaction)
    assert len(inters) == 2 and len(_fetch(url, Lead)) == 2
    answered = inters[-1]
    assert answered.outcome == "answered" and answered.duration_s == exp["talk_seconds"]
    assert answered.recording_url is None  # nothing was recorded (no MixMonitor)
    assert _fetch(url, Task)[0].status == "open"  # a different caller closes nothing


def test_ingest_ami_rejects_what_is_not_an_ami_stream(
    config: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, url = config
    bad = tmp_path / "x.ami"
    bad.write_text("<html>not ami</html>")
    assert main(["--config", str(cfg), "ingest", "ami", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not an AMI stream" in err and str(bad) in err
    assert not Path(url.removeprefix("sqlite+aiosqlite:///")).exists()  # nothing written
