"""A show's states and the moves between them, written down once.

created -> live -> (reconnecting -> live)* -> ended, or interrupted when its node died mid-show.
The database side of a move is ``api.shows.lifecycle``; this table is what it obeys.
"""

from __future__ import annotations

import enum


class StreamStatus(enum.StrEnum):
    """created -> live -> (reconnecting -> live)* -> ended; interrupted after a crash."""

    CREATED = "created"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    INTERRUPTED = "interrupted"


S = StreamStatus

TRANSITIONS: dict[StreamStatus, frozenset[StreamStatus]] = {
    S.CREATED: frozenset({S.LIVE}),
    S.LIVE: frozenset({S.RECONNECTING, S.ENDED, S.INTERRUPTED}),
    S.RECONNECTING: frozenset({S.LIVE, S.ENDED, S.INTERRUPTED}),
    S.ENDED: frozenset(),
    S.INTERRUPTED: frozenset(),
}
FINISHED = frozenset({S.ENDED, S.INTERRUPTED})
