"""Put RTP packets back in sequence-number order with a small, bounded buffer."""

from __future__ import annotations

from .rtp import RtpPacket

_HALF = 0x8000
# A jump this large (either way) means the sender restarted its sequence: start over.
_RESET_DISTANCE = 3000


def seq_delta(a: int, b: int) -> int:
    """Signed distance from b to a in 16-bit sequence space."""
    return ((a - b + _HALF) & 0xFFFF) - _HALF


class ReorderBuffer:
    """Release packets in order; hold out-of-order ones until the gap fills or the buffer fills.

    When more than `depth` packets wait behind a hole, the hole is declared lost and
    the next packet released carries `lost=True` through `pop()`'s second element, so the
    depacketizer can drop the frame it broke. Late duplicates are discarded.
    """

    def __init__(self, depth: int = 48) -> None:
        self._depth = depth
        self._waiting: dict[int, RtpPacket] = {}
        self._next: int | None = None
        self._lost = False

    def push(self, packet: RtpPacket) -> list[tuple[RtpPacket, bool]]:
        """Add one packet; return the packets now releasable, each with its `lost before` flag."""
        if self._next is None:
            self._next = packet.sequence
        distance = seq_delta(packet.sequence, self._next)
        if abs(distance) > _RESET_DISTANCE:
            self._waiting.clear()
            self._next = packet.sequence
            self._lost = True
        elif distance < 0:
            return []  # late or duplicate
        self._waiting[packet.sequence] = packet
        return self._drain()

    def flush(self) -> list[tuple[RtpPacket, bool]]:
        """Release everything still waiting, in order (at the end of the stream)."""
        released: list[tuple[RtpPacket, bool]] = []
        while self._waiting:
            self._skip_hole()
            released.extend(self._drain())
        return released

    def _drain(self) -> list[tuple[RtpPacket, bool]]:
        released: list[tuple[RtpPacket, bool]] = []
        while True:
            assert self._next is not None
            packet = self._waiting.pop(self._next, None)
            if packet is None:
                if len(self._waiting) <= self._depth:
                    return released
                self._skip_hole()
                continue
            released.append((packet, self._lost))
            self._lost = False
            self._next = (self._next + 1) & 0xFFFF

    def _skip_hole(self) -> None:
        assert self._next is not None
        base = self._next
        self._next = min(self._waiting, key=lambda seq: seq_delta(seq, base) & 0xFFFF)
        self._lost = True
