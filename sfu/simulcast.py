"""Simulcast in: a video track sent as up to three layers, told apart by RID (RFC 8851/8853).

The offer names the layers (``a=rid:<rid> send`` and ``a=simulcast:send <rid>;<rid>``); the
answer echoes them as ``recv`` with the RID and repaired-RID header extensions, and the
publisher then sends each layer on its own SSRC (and RTX SSRC), naming its RID in the first
packets. :class:`Layers` learns each SSRC from that extension and routes every later packet
by SSRC alone (one dict lookup).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .producer import Producer
from .rtp import find_extension_bytes

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
MAX_LAYERS = 3
MAX_SOURCES = 16  # SSRCs remembered per track (a publisher may renumber a layer)
_RID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


def offered_rids(section: str) -> tuple[str, ...]:
    """The RIDs a media section of an offer sends as simulcast, in the offer's order.

    ``a=simulcast:send f;h;q`` (RFC 8853) lists them; each must also be declared by an
    ``a=rid:<rid> send`` line. Alternatives (``f,h``) keep their first; a paused layer
    (``~q``) is received all the same. More than three layers keep the first three; a
    single layer is not simulcast.
    """
    declared = set()
    groups: list[str] = []
    for line in section.splitlines():
        if line.startswith("a=rid:"):
            rid, _, rest = line[6:].partition(" ")
            if rest.split(" ", 1)[0] == "send":
                declared.add(rid)
        elif line.startswith("a=simulcast:"):
            words = line[12:].split()
            if len(words) >= 2 and words[0] == "send":
                groups = words[1].split(";")
    rids: list[str] = []
    for group in groups:
        rid = group.split(",")[0].lstrip("~")
        if rid in declared and _RID.match(rid) and rid not in rids:
            rids.append(rid)
    return tuple(rids[:MAX_LAYERS]) if len(rids) > 1 else ()


def answer_simulcast(
    answer: str, mid: str, rids: Sequence[str], extension_ids: dict[str, int]
) -> str:
    """Add the receiving side of simulcast to the answer's section ``mid``.

    aiortc knows nothing of RIDs: its answer lacks ``a=rid``, ``a=simulcast`` and the two
    extensions, without which the publisher sends one layer.
    """
    lines = answer.split("\r\n")
    start = next(i for i, line in enumerate(lines) if line == f"a=mid:{mid}")
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("m=")), len(lines) - 1)
    added = [f"a=extmap:{extension_ids[uri]} {uri}" for uri in (RID_URI, REPAIRED_RID_URI)]
    added += [f"a=rid:{rid} recv" for rid in rids]
    added.append(f"a=simulcast:recv {';'.join(rids)}")
    return "\r\n".join([*lines[:end], *added, *lines[end:]])


class Layers:
    """The layers of one simulcast video track: a Producer per RID, routed by SSRC.

    ``receive`` and ``receive_rtx`` take the track's media and RTX payload types (what a
    single-layer track's producer takes directly). A packet from an SSRC not yet seen is
    routed by its RID (or repaired RID) extension, or dropped if it names none we answered.
    """

    def __init__(self, producers: Sequence[Producer], rid_id: int, rrid_id: int) -> None:
        self.producers = tuple(producers)
        self._by_rid = {producer.rid: producer for producer in producers}
        self.rid_id = rid_id
        self.rrid_id = rrid_id
        self._media: dict[int, Producer] = {}
        self._rtx: dict[int, Producer] = {}
        self._tee: Callable[[str, bytes], None] | None = None
        self._layer_tees: dict[Producer, Callable[[str, bytes], None]] = {}

    def receive(self, data: bytes) -> None:
        producer = self._media.get(int.from_bytes(data[8:12]))
        if producer is None and (producer := self._learn(data, self.rid_id, self._media)) is None:
            return
        producer.receive(data)
        if self._tee is not None and producer is self.best():
            self._tee(producer.kind, data)
        if self._layer_tees and (listener := self._layer_tees.get(producer)) is not None:
            listener(producer.kind, data)

    def receive_rtx(self, data: bytes) -> None:
        producer = self._rtx.get(int.from_bytes(data[8:12]))
        if producer is None and (producer := self._learn(data, self.rrid_id, self._rtx)) is None:
            return
        producer.receive_rtx(data)

    def tap(self, listener: Callable[[str, bytes], None] | None) -> None:
        """Also hand the packets of the largest layer to ``listener(kind, packet)``."""
        self._tee = listener

    def tap_layer(self, rid: str, listener: Callable[[str, bytes], None] | None) -> bool:
        """Also hand the packets of layer ``rid`` to ``listener``; False if there is none."""
        producer = self._by_rid.get(rid)
        if producer is None:
            return False
        if listener is None:
            self._layer_tees.pop(producer, None)
        else:
            self._layer_tees[producer] = listener
        return True

    def layer(self, rid: str) -> Producer | None:
        return self._by_rid.get(rid)

    @property
    def rids(self) -> tuple[str, ...]:
        """The layers' RIDs, in the offer's order."""
        return tuple(p.rid for p in self.producers if p.rid is not None)

    def _learn(self, data: bytes, ext_id: int, table: dict[int, Producer]) -> Producer | None:
        rid = find_extension_bytes(data, ext_id)
        producer = self._by_rid.get(rid.decode("ascii", "replace")) if rid else None
        if producer is not None:
            if len(table) >= MAX_SOURCES:
                # Keep each layer's newest SSRC: the ones in use may no longer name their RID.
                newest = {p: ssrc for ssrc, p in table.items()}
                table.clear()
                table.update((ssrc, p) for p, ssrc in newest.items())
            table[int.from_bytes(data[8:12])] = producer
        return producer

    def media_ssrc(self, ssrc: int) -> int | None:
        """The layer's media SSRC for one of its SSRCs (media or RTX); None if unknown."""
        producer = self._media.get(ssrc) or self._rtx.get(ssrc)
        return producer.ssrc if producer is not None else None

    def rtx_ssrc(self, producer: Producer) -> int | None:
        return next((ssrc for ssrc, p in self._rtx.items() if p is producer), None)

    def seed(self, producer: Producer, ssrc: int | None, rtx_ssrc: int | None) -> None:
        """Route SSRCs learnt elsewhere (a relay's origin) to ``producer``."""
        if ssrc is not None:
            self._media[ssrc] = producer
        if rtx_ssrc is not None:
            self._rtx[rtx_ssrc] = producer

    def best(self) -> Producer:
        """The layer with the largest picture (the last offered until sizes are known)."""
        return max(
            reversed(self.producers),
            key=lambda p: (p.width or 0) * (p.height or 0),
        )
