"""Request and response bodies of a show's room over REST: chat history and moderation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    StrictInt,
)

from api.accounts.schemas import PublicUserOut
from api.identity.models import Role
from api.web.schemas import Input, Output


class ChatAuthorOut(BaseModel):
    id: str
    display_name: str
    role: Role


class ChatMessageOut(BaseModel):
    id: str
    stream_id: str
    user: ChatAuthorOut
    text: str
    created_at: datetime


class ChatQuery(Input):
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class SanctionOut(Output):
    user_id: str
    user: PublicUserOut = Field(description="The muted or banned account, as chat names it")
    kind: Literal["mute", "ban"]
    created_by: str | None
    created_at: datetime


class SlowModeIn(Input):
    seconds: Annotated[StrictInt, Field(ge=0, le=300, description="0 turns slow mode off")]


class SlowModeOut(BaseModel):
    slow_mode_seconds: int
