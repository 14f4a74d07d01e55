"""The sales gate: a node's memory of what is left of each offer, so that the buyers who cannot
win a flash sale are told at once, before any database work, and the database sees no more
purchases of an offer at a time than it has units left.

It is never the source of truth. It learns from the database's own answers (a pin's units, what
an order left, a refusal), repeats a "sold out" or "sale ended" for at most ``seconds`` (then one
buyer at a time goes to the database again, which answers for everyone), forgets an offer when
this node gives units back, and lets through any request whose Idempotency-Key it has seen, so a
buyer's retry still gets their order back. A buyer held back waits at most ``wait`` seconds,
then asks the database anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from api.web.errors import ApiError
from api.web.metrics import Metrics

KEYS_REMEMBERED = 100_000  # Idempotency-Keys this node let through, newest kept
WAIT_SECONDS = 2.0


@dataclass
class Offer:
    """What the database last said about one product of one show, and who is asking it now."""

    left: int | None = None  # units left; None: not known
    known_at: float = 0.0
    refusal: tuple[str, str] = ("out_of_stock", "Sold out")
    asking: int = 0  # purchases of it at the database now
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class SalesGate:
    """Per offer (stream, product): unknown -> known (``left`` units, from the database's last
    answer; ``left`` purchases at a time) -> sold out (refused from memory while fresh) ->
    unknown again when units come back."""

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wait: float = WAIT_SECONDS,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._seconds = seconds
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._wait = wait
        self._offers: dict[tuple[str, str], Offer] = {}
        self._keys: OrderedDict[tuple[str, str], None] = OrderedDict()

    @asynccontextmanager
    async def admit(
        self, stream_id: str, product_id: str, buyer_id: str, key: str
    ) -> AsyncIterator[None]:
        """Hold a purchase while as many as are left are at the database; refuse it with the
        remembered 409 while the offer is known to be sold out or over."""
        seen = (buyer_id, key)
        if self._seconds <= 0 or seen in self._keys:
            yield
            return
        offer = self._offers.setdefault((stream_id, product_id), Offer())
        deadline = self._clock() + self._wait
        while offer.left is not None:
            fresh = self._clock() - offer.known_at < self._seconds
            if fresh and offer.left == 0:
                code, message = offer.refusal
                self._metrics.orders.labels(code).inc()
                raise ApiError(409, code, message, {"gate": True})
            # A stale "none left" lets one buyer through to ask the database again.
            if offer.asking < (offer.left if fresh else max(offer.left, 1)):
                break
            left = deadline - self._clock()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(offer.changed.wait(), left)
            except TimeoutError:
                break
        self._remember(seen)
        offer.asking += 1
        try:
            yield
        finally:
            offer.asking -= 1
            self._changed(offer)

    def learn(
        self, stream_id: str, product_id: str, left: int, refused: ApiError | None = None
    ) -> None:
        """The database says ``left`` units of the offer are left (0 with its refusal)."""
        if self._seconds <= 0:
            return
        offer = self._offers.setdefault((stream_id, product_id), Offer())
        offer.left, offer.known_at = left, self._clock()
        if refused is not None:
            offer.refusal = (refused.code, refused.message)
        self._changed(offer)

    def forget(self, stream_id: str, product_id: str) -> None:
        """Units came back on this node: the database decides again."""
        offer = self._offers.get((stream_id, product_id))
        if offer is not None:
            offer.left = None
            self._changed(offer)
            if not offer.asking:
                del self._offers[(stream_id, product_id)]

    def show_finished(self, stream_id: str) -> None:
        """The show ended: its offers are forgotten (a purchase still at the database keeps its
        own offer until it is done)."""
        for offer_key in [k for k in self._offers if k[0] == stream_id]:
            del self._offers[offer_key]

    def held(self) -> int:
        """Offers this node remembers."""
        return len(self._offers)

    def _changed(self, offer: Offer) -> None:
        offer.changed.set()
        offer.changed = asyncio.Event()

    def _remember(self, seen: tuple[str, str]) -> None:
        self._keys[seen] = None
        self._keys.move_to_end(seen)
        if len(self._keys) > KEYS_REMEMBERED:
            self._keys.popitem(last=False)


GATE = web.AppKey("sales_gate", SalesGate)
