"""Response bodies of the media edge: a stream's health."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
)

from api.web.schemas import Input
from live.states import StreamStatus
from sfu.stats import RoomStats


class StreamHealthOut(BaseModel):
    """A show's media as this node sees it: ingest tracks and each viewer's delivery."""

    stream_id: str
    status: StreamStatus
    media: RoomStats | None = Field(description="null when this node carries no media for it")


class DelayIn(Input):
    """What a watch page measured of its own delay behind live (seconds)."""

    playback: Literal["webrtc", "hls"]
    latency: Annotated[float, Field(ge=0, le=3600, description="How far behind live it plays")]
    rtt: Annotated[float, Field(ge=0, le=60, description="WebRTC: getStats' round trip")] | None = (
        None
    )
    jitter: (
        Annotated[
            float, Field(ge=0, le=60, description="WebRTC: the jitter buffer's average delay")
        ]
        | None
    ) = None
    session_id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="WebRTC: the WHEP session (the last part of its Location)"
    )
