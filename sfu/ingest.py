"""Where a room's incoming packets go: by payload type to its producers, and to its relays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .producer import Producer, TrackSpec

Route = Callable[[bytes], None]


class Relay(Protocol):
    """Where a source's packets are copied to (a worker process's pipe)."""

    def rtp(self, data: bytes) -> None: ...

    def sender_report(self, ssrc: int, ntp: int, rtp: int) -> None: ...


class Ingest:
    """The packet routes of one source (a WHIP publisher, or a relay of one).

    States: open -> cleared (:meth:`clear`: nothing is routed any more).
    """

    def __init__(self) -> None:
        self.producers: dict[str, Producer] = {}
        self._routes: list[Route | None] = [None] * 128
        self._relays: tuple[Relay, ...] = ()

    def add(self, producer: Producer) -> None:
        """Route the producer's payload type (and its RTX) to it."""
        self.producers[producer.kind] = producer
        self._routes[producer.payload_type & 0x7F] = producer.receive
        if producer.rtx_payload_type is not None:
            self._routes[producer.rtx_payload_type & 0x7F] = producer.receive_rtx

    def route(self, payload_type: int, receive: Route) -> None:
        """Send ``payload_type`` to ``receive`` instead (a tee for the recorder)."""
        self._routes[payload_type & 0x7F] = receive

    def rtp(self, data: bytes) -> None:
        """One decrypted RTP packet, as received."""
        if len(data) > 12:
            route = self._routes[data[1] & 0x7F]
            if route is not None:
                route(data)
            for relay in self._relays:
                relay.rtp(data)

    def sender_report(self, ssrc: int, ntp: int, rtp: int) -> None:
        for producer in self.producers.values():
            if producer.ssrc == ssrc:
                producer.on_sender_report(ntp, rtp)
        for relay in self._relays:
            relay.sender_report(ssrc, ntp, rtp)

    def add_relay(self, relay: Relay) -> None:
        """Also hand every RTP packet (RTX included) and sender report to ``relay``."""
        self._relays = (*self._relays, relay)

    def remove_relay(self, relay: Relay) -> None:
        self._relays = tuple(r for r in self._relays if r is not relay)

    @property
    def relays(self) -> tuple[Relay, ...]:
        return self._relays

    def tracks(self) -> list[TrackSpec]:
        """What a relay needs to rebuild these producers elsewhere."""
        return [producer.spec() for producer in self.producers.values()]

    def clear(self) -> None:
        self._routes = [None] * 128
        self._relays = ()
