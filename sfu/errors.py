"""Typed failures of the media plane, so the HTTP layer can map each to one status code."""

from __future__ import annotations


class SfuError(Exception):
    """Base class of every error raised by :mod:`sfu`."""


class SdpError(SfuError):
    """The SDP offer is malformed (WHIP/WHEP: 400). Raised before any peer connection exists."""


class UnsupportedMediaError(SfuError):
    """The offer is well formed but carries nothing we can receive or send (406/422)."""


class NotLiveError(SfuError):
    """A viewer asked to play a room that has no publisher yet (WHEP: 409 + Retry-After)."""


class IceRestartUnsupportedError(SfuError):
    """aiortc 1.16 cannot restart ICE on a live connection (WHIP/WHEP PATCH: 422)."""


class ClosedError(SfuError):
    """The room or session was closed before or while the request ran (404/410)."""


class NoMediaPortError(SfuError):
    """Every UDP port of this process's slice of the ICE port range is taken (WHIP/WHEP: 503
    + Retry-After). Raised while gathering, before the answer: the session is not created."""
