"""A show's WebRTC audience on this node: the viewer sessions (WHEP) its SFU serves.

Every second ``WebRtcAudience`` reports them per show to ``Counters``, under
``<stream id>/sessions`` and a reporter of its own (``<node>/sfu``, beside the rooms' report of
the same node), so the rooms of every node count a viewer who plays over WebRTC whether or not
their page joined the show's room over Socket.IO (``api.realtime.viewers``). The report is also
its heartbeat: a node that dies stops counting once it expires.

States: new -> running (``start``) -> closed (``close``: the last report is empty).
"""

from __future__ import annotations

from sfu import Sfu
from twins.counters import Counters
from twins.periodic import Periodic

AUDIENCE_TICK = 1.0


def sessions_key(stream_id: str) -> str:
    """The counter of a show's WebRTC viewer sessions, summed over the nodes."""
    return f"{stream_id}/sessions"


class WebRtcAudience:
    def __init__(self, sfu: Sfu, counters: Counters, node: str) -> None:
        self._sfu = sfu
        self._counters = counters
        self._reporter = f"{node}/sfu"
        self._ticker = Periodic(self.report, AUDIENCE_TICK)
        self.closed = False

    def start(self) -> None:
        self._ticker.start()

    async def report(self) -> None:
        """This node's viewer sessions per show, as they are now."""
        sessions = self._sfu.viewer_sessions()
        counts = {sessions_key(room): n for room, n in sessions.items() if n}
        await self._counters.report_viewers(self._reporter, counts)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self._ticker.stop()
        await self._counters.report_viewers(self._reporter, {})
