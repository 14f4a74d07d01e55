"""A show's states and the moves between them, written down once.

created -> live -> (reconnecting -> live)* -> ended, or interrupted when its node died mid-show;
a planned show the seller calls off goes from created to cancelled. The database side of a move
is ``api.shows.lifecycle``; this table is what it obeys.
"""

from __future__ import annotations

import enum


class StreamStatus(enum.StrEnum):
    """created -> live -> (reconnecting -> live)* -> ended; interrupted after a crash;
    created -> cancelled when the seller calls a planned show off."""

    CREATED = "created"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


S = StreamStatus

TRANSITIONS: dict[StreamStatus, frozenset[StreamStatus]] = {
    S.CREATED: frozenset({S.LIVE, S.CANCELLED}),
    S.LIVE: frozenset({S.RECONNECTING, S.ENDED, S.INTERRUPTED}),
    S.RECONNECTING: frozenset({S.LIVE, S.ENDED, S.INTERRUPTED}),
    S.ENDED: frozenset(),
    S.INTERRUPTED: frozenset(),
    S.CANCELLED: frozenset(),
}
FINISHED = frozenset({S.ENDED, S.INTERRUPTED, S.CANCELLED})
