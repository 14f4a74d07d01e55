"""Background work that runs every few seconds and stops cleanly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``tick`` every ``seconds``.

    States: new -> running -> stopped. Stopping waits for a tick in progress rather than
    cancelling it, so a tick never leaves a database connection half-used.
    """

    def __init__(self, tick: Callable[[], Awaitable[object]], seconds: float) -> None:
        self._tick = tick
        self._seconds = seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"periodic {self._tick.__name__}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self._seconds)
                return
            except TimeoutError:
                pass
            try:
                await self._tick()
            except Exception:
                log.exception("%s failed", self._tick.__name__)
