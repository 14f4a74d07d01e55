"""Request and response bodies of webhook endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
)

from api.web.schemas import Input, Output, http_url


def _web_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


WebUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(http_url),
    AfterValidator(_web_url),
    Field(json_schema_extra={"format": "uri"}),
]


class WebhookIn(Input):
    url: WebUrl


class WebhookOut(Output):
    id: str
    url: str
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="Signs every delivery (HMAC-SHA256); shown only now")
