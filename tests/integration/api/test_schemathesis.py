"""Schemathesis against a real ``crmhub serve`` (issue 10 item 18), on SQLite and on
PostgreSQL, as an admin and as a manager: no 5xx, every response matches the OpenAPI
document at ``/api/v1/openapi.json``.  Positive and negative examples, a fixed number per
operation, derandomized (see tests/support/api_fuzz.py; run it by hand for more)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.api_fuzz import FuzzReport, fuzz_api, seed, served_app

EXAMPLES = 6  # per operation, mode and user: about 1,000 requests per database


async def test_api_has_no_5xx_and_matches_its_schema(db_url: str, tmp_path: Path) -> None:
    tokens = await seed(db_url)

    def run() -> tuple[FuzzReport, str]:
        with served_app(db_url, tmp_path) as (base, log):
            report = fuzz_api(base, tokens, max_examples=EXAMPLES)
            return report, log.read_text(encoding="utf-8", errors="replace")

    report, log = await asyncio.to_thread(run)
    print(f"schemathesis: {report.requests} requests in {report.seconds:.1f} s", report.statuses)
    assert report.operations >= 40
    ok = sum(n for status, n in report.statuses.items() if 200 <= status < 300)
    assert ok > 50, report.statuses  # the seeded data is reached, not only 4xx
    failures = "\n".join(str(f) for f in report.failures)
    errors = "\n".join([ln for ln in log.splitlines() if '"level": "error"' in ln][:5])
    assert not report.failures, f"{failures}\n--- server errors ---\n{errors}"
