"""One consumer's forwarding state, and the pure-Python path that forwards with it.

A :class:`Lane` holds what the hot path touches per packet and viewer: the prebuilt header,
the sequence and timestamp offsets, the counters, the NACK history and the route (libsrtp
context, ``sendto``, address). The :class:`~sfu.consumer.Consumer` decides (keyframe gate,
switches, NACK budget), its lane renders, protects and sends. ``sfu._fanout.Lane`` is the
native twin with the same attributes and methods (sfu/native.py picks one); both put the
same bytes on the wire (tests/sfu/test_native.py).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Protocol

from .aiortc_hooks import SRTP_MAX_TRAILER_LEN, srtp_ffi, srtp_protect_in_place

if TYPE_CHECKING:
    from .producer import Entry

MAX_PLAINTEXT = 1500
_pack_pt_seq_ts = struct.Struct("!BHI").pack_into  # (marker | payload type), seq, timestamp
_pack_word = struct.Struct("!I").pack_into

# One scratch buffer for every lane of the process: each packet is rendered, protected in
# place and handed to the kernel before the next one is (the event loop is single-threaded
# and ``sendto`` copies), so a viewer needs no buffer of its own. One buffer stays hot in the
# CPU cache, where a buffer per viewer (1.6 kB each) is cold at every packet of the fan-out.
_BUFFER = srtp_ffi.new("char[]", MAX_PLAINTEXT + SRTP_MAX_TRAILER_LEN)
_VIEW = memoryview(srtp_ffi.buffer(_BUFFER))
_LENGTH = srtp_ffi.new("int *")
# ``_SENDABLE[n]`` is ``_VIEW[:n]``, made once per length: slicing per packet and viewer
# allocated a memoryview each time.
_SENDABLE: list[memoryview | None] = [None] * (len(_VIEW) + 1)


def _sendable(length: int) -> memoryview:
    view = _SENDABLE[length]
    if view is None:
        view = _SENDABLE[length] = _VIEW[:length]
    return view


def drop(data: Any, address: tuple[str, int]) -> None:
    """The ``sendto`` of a route that has no socket: every packet counts as dropped."""
    raise BlockingIOError


class Route(Protocol):
    """Where a lane sends (an :class:`~sfu.egress.Egress`)."""

    session: Any  # the pylibsrtp Session owning ``context``
    context: Any  # its libsrtp ``srtp_t`` (None: not bound)
    sendto: Any
    address: tuple[str, int]


class ForwardLane(Protocol):
    """What a consumer needs of a lane, Python's or the native one."""

    gate: bool  # closed: the consumer's Python forward decides (keyframe gate)
    pt: int
    ext_pos: int
    ext_word: int
    seq_off: int
    ts_off: int
    last_seq: int
    pic_off: int
    tl0_off: int
    packets_sent: int
    bytes_sent: int
    packets_dropped: int

    @property
    def header(self) -> bytes: ...
    def set_header(self, header: bytes) -> None: ...
    def route(self, route: Route) -> None: ...
    def send(self, entry: Entry) -> None: ...
    def send_plain(self, packet: bytes) -> bool: ...
    def entry(self, out_seq: int) -> Entry | None: ...
    def remember(self, out_seq: int, entry: Entry) -> None: ...
    def close(self) -> None: ...


def renumber(
    view: Any, start: int, picture: tuple[int, int, int, int], pic_off: int, tl0_off: int
) -> None:
    """VP8: write the shifted picture id and TL0PICIDX into the payload at ``view[start:]``."""
    at, bits, number, tl0_at = picture
    if bits == 15:
        shifted = (number + pic_off) & 0x7FFF
        view[start + at] = 0x80 | shifted >> 8
        view[start + at + 1] = shifted & 0xFF
    else:
        view[start + at] = (number + pic_off) & 0x7F
    if tl0_at:
        view[start + tl0_at] = (view[start + tl0_at] + tl0_off) & 0xFF


class Lane:
    """The pure-Python path's lane (``SHOPCAST_SFU_NATIVE=off``, or no compiled extension)."""

    # Slots: the hot path reads a dozen attributes per packet; slots make each read cheaper.
    __slots__ = (
        "_address",
        "_context",
        "_history",
        "_mask",
        "_sendto",
        "_session",
        "bytes_sent",
        "ext_pos",
        "ext_word",
        "gate",
        "header",
        "header_length",
        "last_seq",
        "packets_dropped",
        "packets_sent",
        "pic_off",
        "pt",
        "seq_off",
        "tl0_off",
        "ts_off",
    )

    def __init__(self, history: int) -> None:
        self._history: list[Entry | None] = [None] * history
        self._mask = history - 1
        self._session: Any = None
        self._context: Any = None
        self._sendto: Any = drop
        self._address: tuple[str, int] = ("", 0)
        self.header = bytes(12)
        self.header_length = 12
        self.gate = False
        self.pt = self.ext_pos = self.ext_word = 0
        self.seq_off = self.ts_off = self.last_seq = self.pic_off = self.tl0_off = 0
        self.packets_sent = self.bytes_sent = self.packets_dropped = 0

    def set_header(self, header: bytes) -> None:
        self.header = header
        self.header_length = len(header)

    def route(self, route: Route) -> None:
        # Holding the pylibsrtp session keeps the raw libsrtp context valid.
        self._session = route.session
        self._context = route.context
        self._sendto = route.sendto
        self._address = route.address

    def send(self, entry: Entry) -> None:
        """Rewrite one publisher packet for this viewer and send it (the hot path)."""
        seq, ts, marker, payload, _, level, picture = entry
        out_seq = (seq + self.seq_off) & 0xFFFF
        # History holds the shared input entry: a NACK re-renders it, nothing is copied here.
        self._history[out_seq & self._mask] = entry
        self.last_seq = out_seq
        start = self.header_length
        end = start + len(payload)
        if end <= MAX_PLAINTEXT:
            view = _VIEW
            view[:start] = self.header
            _pack_pt_seq_ts(view, 1, self.pt | marker, out_seq, (ts + self.ts_off) & 0xFFFFFFFF)
            if level >= 0 and self.ext_pos:
                if self.ext_word:
                    _pack_word(view, self.ext_pos, self.ext_word | level)
                else:
                    view[self.ext_pos + 1] = level
            view[start:end] = payload
            if picture is not None and (self.pic_off or self.tl0_off):
                renumber(view, start, picture, self.pic_off, self.tl0_off)
            _LENGTH[0] = end
            if not srtp_protect_in_place(self._context, _BUFFER, _LENGTH):
                packet = _SENDABLE[_LENGTH[0]] or _sendable(_LENGTH[0])
                try:
                    self._sendto(packet, self._address)
                    self.packets_sent += 1
                    self.bytes_sent += end - start
                    return
                except OSError:  # BlockingIOError: socket buffer full; others: socket gone
                    pass
        self.packets_dropped += 1

    def send_plain(self, packet: bytes) -> bool:
        """Protect and send a whole plaintext packet (retransmissions, padding)."""
        size = len(packet)
        if size > MAX_PLAINTEXT or self._context is None:
            return False
        _VIEW[:size] = packet
        _LENGTH[0] = size
        if srtp_protect_in_place(self._context, _BUFFER, _LENGTH):
            return False
        try:
            self._sendto(_sendable(_LENGTH[0]), self._address)
        except OSError:
            return False
        return True

    def entry(self, out_seq: int) -> Entry | None:
        return self._history[out_seq & self._mask]

    def remember(self, out_seq: int, entry: Entry) -> None:
        self._history[out_seq & self._mask] = entry

    def close(self) -> None:
        """Empty the history and drop what comes late (the libsrtp context stays valid)."""
        self._history = [None] * len(self._history)
        self._sendto = drop
