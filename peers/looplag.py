"""How late the event loop runs a timer: a probe that sleeps a short tick again and again and
records by how much each wake-up overshot. A long synchronous step shows as one long lag."""

from __future__ import annotations

import asyncio
import contextlib
import time


class LoopLag:
    """States: new -> probing (``start``) -> stopped (``stop``)."""

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._probe(), name="loop lag probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _probe(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.tick)
            self.lags.append(time.perf_counter() - before - self.tick)

    @property
    def worst(self) -> float:
        return max(self.lags, default=0.0)

    def quantile(self, q: float) -> float:
        if not self.lags:
            return 0.0
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
