"""When the recorder asks the publisher for a keyframe."""

from __future__ import annotations

import contextlib
from collections.abc import Callable


class KeyframePolicy:
    """Decides, per video frame, whether to ask the publisher for a keyframe.

    Asks at the start (until the first keyframe), after a lost frame (the remux cannot
    repair it), and, when remuxing, once the current segment nears its maximum length:
    a segment can only start at a keyframe and browsers send them only on request.
    Requests are rate-limited in wall-clock time, as the SFU also limits PLIs.
    """

    def __init__(
        self,
        request: Callable[[], None],
        *,
        clock_rate: int,
        periodic_after: float | None,
        min_interval: float = 0.5,
    ) -> None:
        self._request = request
        self._clock_rate = clock_rate
        self._periodic = None if periodic_after is None else periodic_after * clock_rate
        self._min_interval = min_interval
        self._last_request = -1e18
        self._last_keyframe_pts: int | None = None
        self.requests = 0

    def on_frame(self, pts: int, keyframe: bool, now: float) -> None:
        if keyframe:
            self._last_keyframe_pts = pts
            return
        last, periodic = self._last_keyframe_pts, self._periodic
        if last is None or (periodic is not None and pts - last >= periodic):
            self._ask(now)

    def on_loss(self, now: float) -> None:
        self._ask(now)

    def ask(self, now: float) -> None:
        """Ask now, subject to the rate limit (at start and on a decoder's request)."""
        self._ask(now)

    def _ask(self, now: float) -> None:
        if now - self._last_request < self._min_interval:
            return
        self._last_request = now
        self.requests += 1
        with contextlib.suppress(Exception):  # the SFU's callback must never break recording
            self._request()
