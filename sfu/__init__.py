"""Shopcast's WebRTC media plane: an RTP-forwarding SFU built on aiortc 1.16.0.

The HTTP layer uses :class:`Sfu` (``publish``/``subscribe``/``session``/``close``), the
session objects it returns (``id``, ``add_ice_candidates``, ``close``, ``stats``), the
events in :mod:`sfu.events` and the errors in :mod:`sfu.errors`. Nothing here imports
aiohttp, a database or Socket.IO.
"""

from .candidates import IceSettings, gathering_on
from .consumer import Consumer, ConsumerState
from .errors import (
    ClosedError,
    IceRestartUnsupportedError,
    NoMediaPortError,
    NotLiveError,
    SdpError,
    SfuError,
    UnsupportedMediaError,
)
from .events import EventSink, GoneReason, MediaStarted, PublisherGone, SfuEvent, SubscriberGone
from .pool import RemoteSubscriber
from .ports import MediaPorts, PortRange, PortSettings, ephemeral_ports, serving_media_ports
from .producer import Producer, ProducerState
from .publisher import PublishedTrack, Publisher
from .room import Room, RoomState, SfuSettings
from .session import Session, SessionState
from .sfu import MediaSession, Sfu
from .stats import ConsumerStats, ProducerStats, RoomStats, SessionStats
from .subscriber import Subscriber

__all__ = [
    "ClosedError",
    "Consumer",
    "ConsumerState",
    "ConsumerStats",
    "EventSink",
    "GoneReason",
    "IceRestartUnsupportedError",
    "IceSettings",
    "MediaPorts",
    "MediaSession",
    "MediaStarted",
    "NoMediaPortError",
    "NotLiveError",
    "PortRange",
    "PortSettings",
    "Producer",
    "ProducerState",
    "ProducerStats",
    "PublishedTrack",
    "Publisher",
    "PublisherGone",
    "RemoteSubscriber",
    "Room",
    "RoomState",
    "RoomStats",
    "SdpError",
    "Session",
    "SessionState",
    "SessionStats",
    "Sfu",
    "SfuError",
    "SfuEvent",
    "SfuSettings",
    "Subscriber",
    "SubscriberGone",
    "UnsupportedMediaError",
    "ephemeral_ports",
    "gathering_on",
    "serving_media_ports",
]
