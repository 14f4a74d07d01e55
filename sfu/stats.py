"""Plain statistics records the API can serialise, and the rate meter that feeds them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ProducerStats:
    """One inbound track of the publisher."""

    kind: str
    codec: str
    ssrc: int | None
    packets: int
    bytes: int
    packets_lost: int  # from sequence gaps, like an RTCP receiver report
    bitrate_bps: float
    fps: float | None  # video: frames (RTP timestamps) per second
    width: int | None
    height: int | None
    keyframes: int
    keyframe_requests: int  # PLIs actually sent upstream, after rate limiting
    consumers: int
    rid: str | None = None  # the simulcast layer (None: a track of one layer)
    duplicates: int = 0  # retransmissions of packets that had arrived: not forwarded


@dataclass
class ConsumerStats:
    """One viewer's copy of one track."""

    kind: str
    codec: str
    ssrc: int
    state: str
    packets_sent: int
    bytes_sent: int
    packets_dropped: int  # not sent: viewer not connected or its socket buffer full
    nacks: int
    retransmitted: int
    plis: int
    rtt_seconds: float | None
    rid: str | None = None  # the simulcast layer forwarded (None: the track has one)
    resends_refused: int = 0  # NACKed packets not resent: over the retransmission budget
    switches: int = 0  # layer switches made
    available_bps: float | None = None  # what the viewer's link is estimated to carry


@dataclass
class SessionStats:
    """A publisher or subscriber session."""

    session_id: str
    state: str
    tracks: list[ProducerStats] | list[ConsumerStats] = field(default_factory=list)


@dataclass
class RoomStats:
    room_id: str
    state: str
    publisher: SessionStats | None
    viewers: int
    subscribers: list[SessionStats]


class RateMeter:
    """Per-second rate of a growing counter, over the interval between two samples."""

    def __init__(self) -> None:
        self._count = 0
        self._time: float | None = None
        self.rate = 0.0

    def sample(self, now: float, count: int) -> float:
        if self._time is not None and now > self._time:
            self.rate = (count - self._count) / (now - self._time)
        self._count, self._time = count, now
        return self.rate
