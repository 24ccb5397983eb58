"""One long-running asyncio task owned by an object: ``start()`` and ``stop()``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["BackgroundTask", "poll_claims", "poll_forever"]


class BackgroundTask:
    """Runs ``factory()`` once started; ``stop()`` cancels it and waits for it to end."""

    def __init__(self, factory: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._factory = factory
        self._name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._factory(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def poll_claims(
    claim: Callable[[], Coroutine[Any, Any, int | None]],
    run: Callable[[int], Coroutine[Any, Any, None]],
) -> int:
    """Claim and run items until none is left; returns how many were run."""
    n = 0
    while (item := await claim()) is not None:
        await run(item)
        n += 1
    return n


async def poll_forever(
    run_once: Callable[[], Coroutine[Any, Any, int]],
    wake: asyncio.Event,
    poll_interval: float,
    on_error: Callable[[Exception], None],
) -> None:
    """The loop of a claiming runner: ``run_once()``, then sleep until woken or the poll
    interval passes.  An error (the database went away) is reported and tried again."""
    while True:
        try:
            await run_once()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            on_error(exc)
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), poll_interval)
