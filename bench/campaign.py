"""Benchmark: a campaign to 20,000 recipients into a local aiosmtpd sink (another
process), through the campaign runner exactly as the API starts it: the recipient list
and one outbox command per recipient written, each message rendered (Jinja2, sandboxed),
its ``sending`` mark committed before the SMTP transaction and its result after (group
commit), an outbound interaction on each client's timeline.

Baseline in the same run: bare aiosmtplib sending the same rendered messages (built
beforehand) over the same number of connections to the same sink.  ``ratio`` = campaign
messages/s / bare messages/s.  It is checked that the sink got every address exactly
once.  Memory: the process's peak RSS, and RSS sampled while sending (flat: the runner
holds one feed batch, not the audience).

Last line, one JSON object: ``ratio``, ``messages_per_s``, ``bare_messages_per_s``,
``peak_rss_mb`` (and ``rss_samples_mb``, ``recipients``, ``concurrency``, ``db``).

    .venv/bin/python bench/campaign.py [--recipients 20000] [--concurrency 4] [--pg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiosmtplib  # noqa: E402
from _load import drop_db as drop_url  # noqa: E402
from _load import fresh_db as fresh_url  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from connectors.email import SmtpSettings  # noqa: E402
from connectors.email.campaign_smtp import CampaignSmtp, build_campaign_message  # noqa: E402
from crm_core.access import Actor  # noqa: E402
from crm_core.campaigns import CampaignRunner  # noqa: E402
from crm_core.db import Database, migrate  # noqa: E402
from crm_core.models import CampaignRecipient, Client, ContactPoint, User, utcnow  # noqa: E402
from crm_core.services import campaigns as svc  # noqa: E402
from tests.support.dovecot import free_port  # noqa: E402

SUBJECT = "Весеннее предложение для {{ client.name }}"
HTML = (
    "<p>Здравствуйте, {{ client.name }}!</p><p>Для компаний из {{ client.city }} "
    "скидка 10% до конца месяца.</p><p>{{ owner.name }}<br>{{ owner.signature }}</p>"
    '<p><a href="{{ unsubscribe_url }}">Отписаться</a></p>'
)
TEXT = (
    "Здравствуйте, {{ client.name }}!\n\nДля компаний из {{ client.city }} скидка 10% "
    "до конца месяца.\n\n{{ owner.name }}\n{{ owner.signature }}\n\n"
    "Отписаться: {{ unsubscribe_url }}\n"
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def start_sink(port: int, out: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.smtp_sink", str(port), str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if b"ready" not in line:
        raise RuntimeError("the SMTP sink did not start")
    return proc


def sink_counts(out: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(out, encoding="utf-8") as f:
        for line in f:
            for r in json.loads(line)["to"]:
                counts[r] = counts.get(r, 0) + 1
    return counts


async def seed(db: Database, n: int) -> tuple[User, list[int]]:
    from crm_core.services.users import create_user

    async with db.transaction() as s:
        admin, _ = await create_user(s, "admin@bench.example", "admin", name="Админ")
        owner, _ = await create_user(s, "owner@bench.example", "manager", name="Ольга Петрова")
        owner.signature = "Отдел продаж, +7 495 000-00-00"
    ids: list[int] = []
    now = utcnow()
    for start in range(0, n, 2000):
        chunk = range(start, min(n, start + 2000))
        async with db.transaction() as s:
            rows = (
                await s.execute(
                    insert(Client).returning(Client.id),
                    [
                        {
                            "kind": "company",
                            "name": f"ООО Ромашка {i}",
                            "city": "Москва" if i % 2 else "Казань",
                            "owner_id": owner.id,
                            "status": "cold",
                            "custom": {},
                            "notes": "",
                            "kpp": "",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in chunk
                    ],
                )
            ).all()
            cids = [r[0] for r in rows]
            await s.execute(
                insert(ContactPoint),
                [
                    {
                        "kind": "email",
                        "value": f"r{i}@bench.example",
                        "client_id": cid,
                        "unreachable": False,
                        "created_at": now,
                    }
                    for i, cid in zip(chunk, cids, strict=True)
                ],
            )
            ids.extend(cids)
    return admin, ids


async def bare(messages: list[tuple[str, list[str], bytes]], port: int, conc: int) -> float:
    """The same messages over ``conc`` kept-open connections, no database: seconds."""
    queue: asyncio.Queue[tuple[str, list[str], bytes]] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)

    async def one() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        try:
            while True:
                try:
                    sender, rcpts, data = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await client.sendmail(sender, rcpts, data)
        finally:
            await client.quit()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conc)))
    return time.perf_counter() - t0


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipients", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--pg", action="store_true", help="PostgreSQL (127.0.0.1) instead of SQLite")
    args = ap.parse_args()
    n, conc = args.recipients, args.concurrency

    tmp = Path(tempfile.mkdtemp(prefix="crmhub-campaign-bench-"))
    url = await fresh_url("pg" if args.pg else "sqlite", tmp, "campaign")
    db = Database(url)
    await migrate(db)
    port = free_port()
    out = tmp / "sink.jsonl"
    sink = start_sink(port, out)
    try:
        admin, _ids = await seed(db, n)
        actor = Actor.of(admin)
        policy = svc.CampaignPolicy(public_url="https://crm.bench.example", secret="b" * 32)
        smtp = SmtpSettings(
            host="127.0.0.1",
            port=port,
            tls="none",
            from_address="news@bench.example",
            from_name="Bench News",
            concurrency=conc,
        )
        transport = CampaignSmtp({"default": smtp})
        async with db.transaction() as s:
            c = await svc.create_campaign(
                s,
                actor,
                policy,
                {
                    "name": "bench",
                    "filter": {},
                    "subject": SUBJECT,
                    "html": HTML,
                    "text": TEXT,
                },
            )
            cid = c.id
        async with db.transaction() as s:
            await svc.start(s, actor, policy, cid)

        runner = CampaignRunner(db, transport, policy, lease_seconds=30)
        samples: list[float] = []

        async def sample() -> None:
            while True:
                await asyncio.sleep(1.0)
                samples.append(round(current_rss_mb(), 1))

        sampler = asyncio.create_task(sample())
        t0 = time.perf_counter()
        await runner.run_once()
        campaign_s = time.perf_counter() - t0
        sampler.cancel()
        await transport.close()
        async with db.sessions() as s:
            sent = await s.scalar(
                select(func.count()).where(
                    CampaignRecipient.campaign_id == cid, CampaignRecipient.status == "sent"
                )
            )
            recips = list(
                await s.execute(
                    select(CampaignRecipient.email, CampaignRecipient.client_id).where(
                        CampaignRecipient.campaign_id == cid
                    )
                )
            )
        if sent != n:
            raise SystemExit(f"campaign sent {sent} of {n}")

        # The baseline: the same rendered messages, bare aiosmtplib, same connections.
        messages: list[tuple[str, list[str], bytes]] = []
        async with db.sessions() as s:
            owner = await s.scalar(select(User).where(User.email == "owner@bench.example"))
            clients = {cl.id: cl for cl in await s.scalars(select(Client))}
        tpl = svc.Templates(SUBJECT, HTML, TEXT)
        for email, client_id in recips:
            ctx = {
                "client": svc.client_context(clients[client_id], []),
                "contact": None,
                "owner": svc.owner_context(owner),
                "unsubscribe_url": svc.unsubscribe_link(policy, cid, email),
                "campaign": {"name": "bench"},
            }
            r = tpl.render(ctx)
            payload: dict[str, Any] = {
                "from": "Bench News <news@bench.example>",
                "to": [email],
                "subject": r.subject,
                "text": r.text,
                "html": r.html,
                "message_id": f"<bare.{client_id}@bench.example>",
                "headers": svc.unsubscribe_headers(ctx["unsubscribe_url"]),
            }
            sender, rcpts, data, _mid = build_campaign_message(payload)
            messages.append((sender, rcpts, data))
        bare_s = await bare(messages, port, conc)
        await asyncio.sleep(0.5)
        counts = sink_counts(out)
        if len(counts) != n or any(v != 2 for v in counts.values()):
            bad = sum(1 for v in counts.values() if v != 2)
            raise SystemExit(f"the sink did not get every address once per run ({bad} off)")
    finally:
        sink.terminate()
        sink.wait()
        await db.dispose()
        if args.pg:
            await drop_url(url)

    mps = n / campaign_s
    bare_mps = n / bare_s
    result = {
        "ratio": round(mps / bare_mps, 3),
        "messages_per_s": round(mps, 1),
        "bare_messages_per_s": round(bare_mps, 1),
        "peak_rss_mb": round(rss_mb(), 1),
        "rss_samples_mb": samples[:: max(1, len(samples) // 10)],
        "recipients": n,
        "concurrency": conc,
        "campaign_s": round(campaign_s, 2),
        "bare_s": round(bare_s, 2),
        "db": "postgresql" if args.pg else "sqlite",
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
