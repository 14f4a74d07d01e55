"""The viewer count: who watches each show, on every node, and the number the room sees.

A member who joins a running show's room is one of its viewers (``counts_as_viewer``: the seller
does not count, nor anyone once the show is over) until they leave: their watch time, unique
viewers overall and per playback (WebRTC or HLS) are counted here. Each node reports its own
viewers per show and per playback to ``Counters`` every second, and its SFU its WebRTC viewer
sessions (``live.audience``); the totals over all nodes (``audience_of``) feed the show's peak
and per-minute analytics and reach the room as ``stream:viewers``, at most every 2 s while the
count moves and at least every 10 s.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import socketio

from api.realtime.rooms import Member, Playback, Room, RoomPolicy, room_name
from api.web.context import Audience
from live.audience import sessions_key
from twins.counters import Counters

VIEWER_TICK = 1.0
VIEWER_MIN_GAP = 2.0
VIEWER_MAX_GAP = 10.0


def counts_as_viewer(member: Member, policy: RoomPolicy) -> bool:
    """Viewers of a running show count; the seller, and visitors after the end, do not."""
    return not policy.finished and (member.user is None or member.user.id != policy.owner_id)


def local_viewers(rooms: dict[str, Room], members: dict[str, Member]) -> dict[str, int]:
    """This node's viewers per stream, and per stream and playback (``<id>/hls``)."""
    local = {}
    for stream_id, room in rooms.items():
        local[stream_id] = len(room.viewers)
        hls = sum(1 for s in room.viewers if members[s].playback[stream_id] == "hls")
        local[f"{stream_id}/hls"] = hls
        local[f"{stream_id}/webrtc"] = len(room.viewers) - hls
    return local


def audience_keys(stream_id: str) -> list[str]:
    """The counters ``audience_of`` reads for a show."""
    return [f"{stream_id}/webrtc", f"{stream_id}/hls", sessions_key(stream_id)]


def audience_of(totals: Mapping[str, int], stream_id: str) -> Audience:
    """Who watches, from the counters summed over the nodes. WebRTC viewers are the members who
    play over WebRTC or the open WHEP sessions, whichever are more: most viewers are both, so the
    larger never counts one twice, and a session whose page has no socket (or has not joined
    yet) still counts."""
    webrtc = max(totals[f"{stream_id}/webrtc"], totals[sessions_key(stream_id)])
    return Audience(webrtc=webrtc, hls=totals[f"{stream_id}/hls"])


class ViewerCount:
    """Counts who watches; reports this node's viewers and tells each room the total."""

    def __init__(self, node: str, counters: Counters, sio: socketio.AsyncServer) -> None:
        self._node = node
        self._counters = counters
        self._sio = sio

    async def start_watching(self, room: Room, member: Member) -> None:
        """``member`` just joined ``room``: a viewer, unless they do not count."""
        if not counts_as_viewer(member, room.policy):
            return
        room.viewers.add(member.sid)
        stream_id = room.policy.stream_id
        room.stats.unique = max(
            room.stats.unique, await self._counters.add_unique(stream_id, member.viewer_key)
        )
        await self._count_playback(room, member)
        room.show_pins(member.viewer_key)

    async def switch_playback(self, room: Room, member: Member, playback: Playback) -> None:
        stream_id = room.policy.stream_id
        if member.playback[stream_id] != playback:
            member.playback[stream_id] = playback
            if member.sid in room.viewers:
                await self._count_playback(room, member)

    def stop_watching(self, room: Room, member: Member, now: float) -> None:
        """The viewer's watch session ends (they left, or the show did)."""
        if member.sid in room.viewers:
            room.viewers.discard(member.sid)
            room.stats.watch_seconds += now - member.rooms[room.policy.stream_id]
            room.stats.sessions += 1

    async def _count_playback(self, room: Room, member: Member) -> None:
        """Unique viewers per way of watching: a viewer who switches counts in both."""
        stream_id = room.policy.stream_id
        playback = member.playback[stream_id]
        seen = await self._counters.add_unique(f"{stream_id}/{playback}", member.viewer_key)
        room.stats.unique_by[playback] = max(room.stats.unique_by[playback], seen)

    async def tick(self, rooms: dict[str, Room], members: dict[str, Member]) -> None:
        await self._counters.report_viewers(self._node, local_viewers(rooms, members))
        watched = [s for s, room in rooms.items() if room.members]
        keys = [key for s in watched for key in audience_keys(s)]
        totals = await self._counters.viewers(keys) if watched else {}
        now = time.monotonic()
        for stream_id in watched:
            audience = audience_of(totals, stream_id)
            total = audience.viewers
            room = rooms[stream_id]
            room.remote = max(0, total - len(room.viewers))
            room.stats.peak = max(room.stats.peak, total)
            if total:
                room.stats.minute().saw(total, audience.webrtc, audience.hls)
            gap = now - room.sent_at
            if (total != room.sent_count and gap >= VIEWER_MIN_GAP) or gap >= VIEWER_MAX_GAP:
                room.sent_count, room.sent_at = total, now
                await self._sio.emit(
                    "stream:viewers",
                    {"stream_id": stream_id, "count": total},
                    room=room_name(stream_id),
                    ignore_queue=True,
                )
