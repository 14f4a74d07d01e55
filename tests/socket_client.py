"""A python-socketio test client that records every event it receives."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import socketio


class Viewer:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self._arrived = asyncio.Event()

        @self.sio.on("*")
        async def record(event: str, data: Any = None) -> None:
            self.events.append((event, data))
            self._arrived.set()

    async def connect(self, url: str, **auth: Any) -> Viewer:
        await self.sio.connect(url, auth=auth or None, transports=["websocket"], wait_timeout=5)
        return self

    async def call(self, event: str, data: Any) -> dict[str, Any]:
        reply = await self.sio.call(event, data, timeout=5)
        assert isinstance(reply, dict), reply
        return reply

    def received(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    async def wait_for(
        self, event: str, match: Callable[[Any], bool] = lambda _: True, within: float = 5
    ) -> Any:
        deadline = time.monotonic() + within
        while True:
            for data in self.received(event):
                if match(data):
                    return data
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event} matching in {within} s; got {self.events}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def close(self) -> None:
        await self.sio.disconnect()
