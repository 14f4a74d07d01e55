"""What a show tells its viewers, on every node, once the change behind it has committed.

A room's rules (chat on or off, slow mode, bans) and its products are cached by each node's
realtime rooms; these messages tell every node to reload them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.web.context import Rooms
from twins.bus import Bus, Message


@dataclass(frozen=True)
class RoomChanged(Message, kind="room.changed"):
    """The room's rules changed; ``banned`` users must leave it."""

    stream_id: str
    banned: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProductsChanged(Message, kind="products.changed"):
    """The show's lineup changed: clicks, asks and chat mentions may name new products."""

    stream_id: str


@dataclass
class RoomChange:
    """What viewers must hear about a moderation action, and who must leave the room."""

    stream_id: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    banned: list[str] = field(default_factory=list)


async def announce(rooms: Rooms, bus: Bus, change: RoomChange) -> None:
    """Tell viewers, and every node, about a committed change."""
    for event, data in change.events:
        await rooms.to_stream(change.stream_id, event, data)
    await bus.publish(RoomChanged(change.stream_id, change.banned))
