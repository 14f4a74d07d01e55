"""Where a room's incoming packets go: by payload type to its producers, and to its relays."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from .producer import Producer, TrackSpec
from .simulcast import Layers

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
        # kind -> its producer; for a simulcast track, the layer named last in the offer.
        self.producers: dict[str, Producer] = {}
        self.layers: dict[str, Layers] = {}
        self._routes: list[Route | None] = [None] * 128
        self._relays: tuple[Relay, ...] = ()

    def add(self, producer: Producer) -> None:
        """Route the producer's payload type (and its RTX) to it."""
        self.producers[producer.kind] = producer
        self._routes[producer.payload_type & 0x7F] = producer.receive
        if producer.rtx_payload_type is not None:
            self._routes[producer.rtx_payload_type & 0x7F] = producer.receive_rtx

    def add_layers(self, layers: Layers) -> None:
        """Route a simulcast track's payload types to its layers, by SSRC."""
        first = layers.producers[0]
        self.producers[first.kind] = layers.producers[-1]
        self.layers[first.kind] = layers
        self._routes[first.payload_type & 0x7F] = layers.receive
        if first.rtx_payload_type is not None:
            self._routes[first.rtx_payload_type & 0x7F] = layers.receive_rtx

    def main(self, kind: str) -> Producer | None:
        """The producer that stands for the track: a simulcast track's largest layer."""
        layers = self.layers.get(kind)
        return layers.best() if layers is not None else self.producers.get(kind)

    def find(self, key: str) -> Producer | None:
        """The producer named by :attr:`Producer.key`."""
        return next((p for p in self.every() if p.key == key), None)

    def every(self) -> list[Producer]:
        """Every producer, each simulcast layer included."""
        return [
            producer
            for kind, main in self.producers.items()
            for producer in (self.layers[kind].producers if kind in self.layers else (main,))
        ]

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
        for producer in self.every():
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
        """What a relay needs to rebuild these producers elsewhere (every layer)."""
        specs = []
        for producer in self.every():
            layers = self.layers.get(producer.kind)
            spec = producer.spec()
            if layers is not None:
                spec = dataclasses.replace(
                    spec,
                    rid_id=layers.rid_id,
                    rrid_id=layers.rrid_id,
                    ssrc=producer.ssrc,
                    rtx_ssrc=layers.rtx_ssrc(producer),
                )
            specs.append(spec)
        return specs

    def clear(self) -> None:
        self._routes = [None] * 128
        self._relays = ()
