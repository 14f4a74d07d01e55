"""Events the media plane reports to whoever drives the stream lifecycle (the API)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class GoneReason(enum.Enum):
    """Why a publisher or subscriber session ended."""

    CLOSED = "closed"  # close() was called (DELETE, room closed)
    REPLACED = "replaced"  # a new publisher took over the room
    CONNECTION_FAILED = "connection_failed"  # ICE failed or consent freshness lost
    CONNECTION_CLOSED = "connection_closed"  # the peer closed DTLS
    MEDIA_TIMEOUT = "media_timeout"  # no RTP for SfuSettings.media_timeout seconds


@dataclass(frozen=True)
class MediaStarted:
    """The first RTP packet of a publisher session arrived."""

    room_id: str
    session_id: str


@dataclass(frozen=True)
class PublisherGone:
    """A publisher session ended; viewers stay connected and resume on a new publisher."""

    room_id: str
    session_id: str
    reason: GoneReason


@dataclass(frozen=True)
class SubscriberGone:
    """A viewer session ended."""

    room_id: str
    session_id: str
    reason: GoneReason


SfuEvent = MediaStarted | PublisherGone | SubscriberGone
EventSink = Callable[[SfuEvent], None]


def ignore_events(event: SfuEvent) -> None:
    """The default sink: the media plane works without anyone listening."""
