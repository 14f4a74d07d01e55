"""Turns media-plane events into stream status changes.

Per stream: live -> reconnecting (the publisher went away; a grace timer runs) -> live (it
came back: a new WHIP session sent media) or ended (the timer ran out).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sfu import GoneReason, MediaStarted, PublisherGone, SfuEvent

log = logging.getLogger(__name__)


class ShowStates(Protocol):
    """Where a show's status is kept (``api.shows.lifecycle.StreamLifecycle``); each move
    answers whether it happened (a finished show does not move)."""

    async def media_started(self, stream_id: str) -> bool: ...

    async def publisher_lost(self, stream_id: str) -> bool: ...

    async def publisher_gone(self, stream_id: str) -> bool: ...

    async def interrupted(self, stream_id: str) -> bool: ...

    async def running(self) -> list[str]:
        """The shows that are live or reconnecting, on any node."""
        ...


class StreamSupervisor:
    def __init__(
        self,
        lifecycle: ShowStates,
        close_media: Callable[[str], Awaitable[None]],
        grace_seconds: float,
        media_started: Callable[[str], Awaitable[None]],
    ) -> None:
        self._lifecycle = lifecycle
        self._close_media = close_media
        self._media_started = media_started
        self._grace = grace_seconds
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def on_event(self, event: SfuEvent) -> None:
        """The SFU's event sink: synchronous, so the work runs as tasks."""
        if isinstance(event, PublisherGone):
            if event.reason is not GoneReason.REPLACED:
                self._spawn(self._publisher_lost(event.room_id))
        elif isinstance(event, MediaStarted):
            timer = self._timers.pop(event.room_id, None)
            if timer is not None:
                timer.cancel()
            self._spawn(self._lifecycle.media_started(event.room_id))
            self._spawn(self._media_started(event.room_id))

    async def adopt(self, stream_ids: list[str]) -> None:
        """Streams whose node died: their publisher has the grace period to come back to any
        node, as if it had left this one; then the show ends."""
        for stream_id in stream_ids:
            if stream_id not in self._timers:
                log.warning("stream %s lost its node; waiting for its publisher", stream_id)
                await self._lifecycle.publisher_lost(stream_id)
                self._timers[stream_id] = asyncio.create_task(self._expire(stream_id))

    async def _publisher_lost(self, stream_id: str) -> None:
        if await self._lifecycle.publisher_lost(stream_id):
            old = self._timers.pop(stream_id, None)
            if old is not None:
                old.cancel()
            self._timers[stream_id] = asyncio.create_task(self._expire(stream_id))

    async def _expire(self, stream_id: str) -> None:
        await asyncio.sleep(self._grace)
        self._timers.pop(stream_id, None)
        if await self._lifecycle.publisher_gone(stream_id):
            await self._close_media(stream_id)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("stream lifecycle update failed", exc_info=task.exception())

    async def close(self) -> None:
        """Stop the grace timers; let status updates in flight finish (never cut mid-query)."""
        for timer in self._timers.values():
            timer.cancel()
        await asyncio.gather(*self._timers.values(), return_exceptions=True)
        self._timers.clear()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
