"""Response bodies of the media edge: a stream's health."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    Field,
)

from live.states import StreamStatus
from sfu.stats import RoomStats


class StreamHealthOut(BaseModel):
    """A show's media as this node sees it: ingest tracks and each viewer's delivery."""

    stream_id: str
    status: StreamStatus
    media: RoomStats | None = Field(description="null when this node carries no media for it")
