"""The processor lets the intake commit first: before each batch it waits, bounded, for
the inbox writer to have no submission waiting (a burst is acknowledged, then processed)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from crm_core.pipeline.process import PipelineConfig
from crm_core.pipeline.worker import InboxProcessor


def processor(idle: asyncio.Event | None, yield_seconds: float) -> InboxProcessor:
    db: Any = SimpleNamespace(is_postgres=False)  # only its dialect is read
    return InboxProcessor(
        db,
        assigner=None,  # type: ignore[arg-type]
        live=None,  # type: ignore[arg-type]
        cfg=PipelineConfig(),
        intake_idle=idle,
        yield_seconds=yield_seconds,
    )


async def test_waits_while_the_intake_is_busy() -> None:
    idle = asyncio.Event()
    task = asyncio.create_task(processor(idle, 60)._yield_to_intake())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done(), "a batch must not start while submissions wait for a commit"
    idle.set()
    await asyncio.wait_for(task, 5)


async def test_the_wait_is_bounded() -> None:
    never = asyncio.Event()
    await asyncio.wait_for(processor(never, 0.01)._yield_to_intake(), 5)


async def test_no_intake_no_wait() -> None:
    await asyncio.wait_for(processor(None, 60)._yield_to_intake(), 1)
