"""Auction news for a show's room: the bids a node accepted, sent once per tick.

A bidding war accepts bids faster than a room of a thousand can be told each one, and a page
only shows the latest: so each tick sends each auction's newest state once (the one with the
most bids), ``extended`` if any bid of the tick moved the end. Acks never wait for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from api.commerce.auctions import Event

BID_TICK = 0.1
Send = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class BidNews:
    """States: empty -> holding news (``add``) -> empty again (``tick`` sent it)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._news: dict[str, tuple[str, dict[str, Any]]] = {}  # auction id -> (stream, data)

    def add(self, events: list[Event]) -> None:
        for stream_id, _, data in events:
            held = self._news.get(data["id"])
            if held is None or held[1]["bids"] < data["bids"]:
                extended = data["extended"] or (held is not None and held[1]["extended"])
                self._news[data["id"]] = (stream_id, {**data, "extended": extended})
            elif data["extended"]:
                held[1]["extended"] = True

    async def tick(self) -> None:
        news, self._news = self._news, {}
        for stream_id, data in news.values():
            await self._send(stream_id, "auction:bid", data)
