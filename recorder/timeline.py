"""The recording timeline: RTP timestamps of independent tracks placed on one clock.

Each track's RTP clock starts at a random offset, so the tracks are aligned by anchoring
the first packet of each track to its arrival time: media time = (arrival of the track's
first packet - arrival of the recording's first packet) + (RTP time since that packet).
Media timing within a track then comes from RTP timestamps only, never from arrival times,
so network jitter does not leak into the recording. The alignment error is the difference
in network delay of the two first packets (tens of milliseconds on a steady path). RTCP
sender reports would be exact; this anchor needs no RTCP access from the SFU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

_WRAP = 1 << 32
_HALF = 1 << 31


@dataclass(slots=True)
class Origin:
    """The arrival instant (monotonic and wall clock) that is media time zero."""

    monotonic: float | None = None
    wall: float = 0.0
    now: Callable[[], float] = field(default=time.monotonic)
    wall_now: Callable[[], float] = field(default=time.time)

    def mark(self) -> float:
        """Fix the origin at the first call; return the current monotonic time."""
        now = self.now()
        if self.monotonic is None:
            self.monotonic = now
            self.wall = self.wall_now()
        return now


class TrackClock:
    """Maps one track's 32-bit RTP timestamps to pts on the recording timeline.

    States: unanchored -> anchored (first packet). `reset()` re-anchors, for a new SSRC.
    """

    def __init__(self, clock_rate: int, origin: Origin) -> None:
        self.clock_rate = clock_rate
        self._origin = origin
        self._last: int | None = None
        self._extended = 0
        self._base = 0
        self._offset = 0

    def reset(self) -> None:
        self._last = None

    def pts(self, timestamp: int) -> int:
        """The pts (in this track's clock units) of an RTP timestamp, unwrapped across 2^32."""
        if self._last is None:
            now = self._origin.mark()
            assert self._origin.monotonic is not None
            self._offset = round((now - self._origin.monotonic) * self.clock_rate)
            self._base = self._extended = timestamp
        else:
            delta = (timestamp - self._last) & (_WRAP - 1)
            if delta >= _HALF:
                delta -= _WRAP  # slightly older (reordered) frame
            self._extended += delta
        self._last = timestamp
        return self._offset + self._extended - self._base
