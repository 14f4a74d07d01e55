"""What a socket sends (each event's payload, checked like a REST body) and how it is refused."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from api.realtime.rooms import Playback
from api.web.schemas import plain_text

Ack = dict[str, Any]


def retry_seconds(wait: float) -> float:
    """A wait as the client sees it: rounded up to the hundredth, so never 0 when refused."""
    return math.ceil(wait * 100) / 100


class Refusal(Exception):
    """An event refused with a code the client can act on."""

    def __init__(self, code: str, message: str = "", **extra: Any) -> None:
        super().__init__(message or code)
        self.code = code
        self.extra = extra


class StreamIn(BaseModel):
    """Socket payloads are checked like REST bodies: no unknown fields, no coercion, no NUL."""

    model_config = ConfigDict(extra="forbid", strict=True)

    stream_id: str

    @field_validator("*", mode="after")
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        return plain_text(value)


class JoinIn(StreamIn):
    playback: Playback = "webrtc"


class PlaybackIn(StreamIn):
    playback: Playback


class ProductIn(StreamIn):
    product_id: str


class ChatIn(StreamIn):
    text: str


class ReactionIn(StreamIn):
    emoji: str


class MessageIn(StreamIn):
    message_id: str


class UserIn(StreamIn):
    user_id: str


class SlowIn(StreamIn):
    seconds: int


class PrepareIn(StreamIn):
    countdown: int = 3


class BidEventIn(StreamIn):
    """``auction:bid``: the same fields as the REST bid (``api.commerce.schemas.BidIn``); the
    delay evidence is that of the playback the socket joined with."""

    auction_id: str
    amount_cents: int
    seen_cents: int | None = None
    anonymous: bool = False
