"""The Socket.IO events as an AsyncAPI 3 document (``shopcast asyncapi``, docs/asyncapi.yaml).

The payloads a socket sends are the models the server validates them with (``payloads.py``);
the ones it sends back are the REST output models where an event carries one, and the small
models below for the rest, so the document is generated, never written by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from api.commerce.schemas import AuctionOut, BidOut, OrderOut
from api.realtime import payloads
from api.realtime.schemas import ChatMessageOut
from api.shows.schemas import PinOut, StreamProductOut
from live.states import StreamStatus


class Ok(BaseModel):
    ok: Literal[True]


class RoomOut(BaseModel):
    id: str
    status: StreamStatus
    enable_chat: bool
    slow_mode_seconds: int


class JoinAck(Ok):
    viewer_id: str | None = Field(
        description="The browser's signed viewer key, to send back in `auth` on the next "
        "connection; null for a signed-in socket that sent none"
    )
    stream: RoomOut
    viewers: int
    chat: list[ChatMessageOut] = Field(description="The latest 50 lines not deleted, oldest first")
    products: list[StreamProductOut]
    reactions: dict[str, int] = Field(description="The stream's totals per emoji")


class ChatAck(Ok):
    message: ChatMessageOut


class BidAck(Ok, BidOut):
    pass


class Refused(BaseModel):
    """Any refused event: it stored nothing and sent nothing to the room."""

    ok: Literal[False]
    error: str = Field(description="A code the client acts on: see the operation's description")
    message: str | None = Field(None, description="For people; absent for `not_connected`")
    retry_after: float | None = Field(
        None, description="Seconds, for `rate_limited`, `slow_mode` and `database_*`"
    )


class BidRefused(Refused):
    status: str = Field(description="The refusal's code again, as the REST bid answers")
    high_cents: int | None = None
    next_min_cents: int | None = None
    ends_at: datetime | None = None


class ChatBatch(BaseModel):
    stream_id: str
    messages: list[ChatMessageOut] = Field(description="Oldest first")


class ChatDeleted(BaseModel):
    stream_id: str
    ids: list[str]


class ReactionCounts(BaseModel):
    stream_id: str
    counts: dict[str, int] = Field(description="This node's new reactions of the 250 ms window")


class Viewers(BaseModel):
    stream_id: str
    count: int


class StatusChange(BaseModel):
    stream_id: str
    status: StreamStatus
    preparing: bool | None = Field(None, description="true when the seller sent stream:prepare")
    countdown: int | None = Field(None, description="Seconds, 0 to 10, with `preparing`")


class SettingsChange(BaseModel):
    stream_id: str
    slow_mode_seconds: int | None = None
    enable_chat: bool | None = None


class Unpinned(BaseModel):
    stream_id: str
    product_id: str


class Tagged(BaseModel):
    stream_id: str
    product_id: str
    x: float | None
    y: float | None
    timestamp: float | None
    stock: int


class StockChange(BaseModel):
    stream_id: str
    product_id: str
    stock: int
    sale_remaining: int | None
    buyer: str | None = Field(None, description="The buyer's display name, when units were taken")


class PinnedOut(PinOut):
    stream_id: str


class AuctionBid(AuctionOut):
    extended: bool = Field(description="A bid of the 100 ms window moved the end")
    late: bool


class Banned(BaseModel):
    stream_id: str


@dataclass(frozen=True)
class Received:
    """An event a client sends, with its ack and the refusal codes particular to it."""

    payload: type[BaseModel]
    ack: type[BaseModel]
    summary: str
    errors: tuple[str, ...]


MODERATION = ("sign_in_required", "not_found", "forbidden", "cannot_sanction")
TAP = ("not_joined", "stream_ended", "rate_limited", "unknown_product")

RECEIVED: dict[str, Received] = {
    "stream:join": Received(
        payloads.JoinIn,
        JoinAck,
        "Join a show's room and get what the page draws",
        ("not_found", "banned", "audience_restricted", "too_many_rooms"),
    ),
    "stream:leave": Received(payloads.StreamIn, Ok, "Leave the room (ok when not in it)", ()),
    "stream:playback": Received(
        payloads.PlaybackIn, Ok, "The page now plays over WebRTC or HLS", ("not_joined",)
    ),
    "product:click": Received(payloads.ProductIn, Ok, "A viewer tapped a product card", TAP),
    "product:ask": Received(payloads.ProductIn, Ok, "A viewer tapped a product's ask", TAP),
    "stream:chat": Received(
        payloads.ChatIn,
        ChatAck,
        "Send a chat line",
        (
            "not_joined",
            "sign_in_required",
            "chat_disabled",
            "stream_ended",
            "banned",
            "muted",
            "empty",
            "too_long",
            "rate_limited",
            "slow_mode",
        ),
    ),
    "stream:reaction": Received(
        payloads.ReactionIn,
        Ok,
        "React with one of six emoji",
        ("not_joined", "stream_ended", "unknown_emoji", "banned", "rate_limited"),
    ),
    "stream:prepare": Received(
        payloads.PrepareIn,
        Ok,
        "The seller announces the start",
        ("not_found", "forbidden", "stream_ended"),
    ),
    "auction:bid": Received(
        payloads.BidEventIn,
        BidAck,
        "Bid in an auction (a refusal is BidRefused)",
        ("not_joined", "sign_in_required", "not_found", "too_low", "outbid", "closed", "unseen"),
    ),
    "chat:delete": Received(payloads.MessageIn, Ok, "Delete a chat line", MODERATION),
    "moderation:mute": Received(payloads.UserIn, Ok, "Mute an account in the show", MODERATION),
    "moderation:unmute": Received(payloads.UserIn, Ok, "Lift a mute", MODERATION),
    "moderation:ban": Received(payloads.UserIn, Ok, "Ban an account from the show", MODERATION),
    "moderation:unban": Received(payloads.UserIn, Ok, "Lift a ban", MODERATION),
    "moderation:slow_mode": Received(
        payloads.SlowIn, Ok, "Set slow mode (0 to 300 s)", (*MODERATION, "invalid")
    ),
}

# Codes any event may be refused with, whatever it is.
ANY_EVENT = ("invalid", "not_connected", "unauthorized", "internal", "database_unavailable")

SENT: dict[str, tuple[type[BaseModel], str]] = {
    "stream:chat": (ChatMessageOut, "One chat line stored in the last 50 ms window"),
    "stream:chat_batch": (ChatBatch, "Several lines stored in the window"),
    "stream:chat_deleted": (ChatDeleted, "Lines deleted, or hidden by a ban"),
    "stream:reactions": (ReactionCounts, "Every 250 ms from each node with new reactions"),
    "stream:viewers": (Viewers, "The cluster-wide count, from each node to its own clients"),
    "stream:status": (StatusChange, "The show went live, reconnecting or ended; or preparing"),
    "stream:settings": (SettingsChange, "Slow mode or enable_chat changed"),
    "stream:banned": (Banned, "Only to a banned account's sockets, removed from the room"),
    "product:pinned": (PinnedOut, "A product was pinned, moved, or its flash sale changed"),
    "product:unpinned": (Unpinned, "A product was unpinned"),
    "product:tagged": (Tagged, "A product was tagged"),
    "product:stock": (StockChange, "An order took units, or they came back"),
    "auction:started": (AuctionOut, "The seller started an auction"),
    "auction:closed": (AuctionOut, "An auction closed, sold or unsold"),
    "auction:bid": (AuctionBid, "Bids were accepted: each auction's newest state per 100 ms"),
    "order:status": (OrderOut, "Only to the buyer's sockets: their order changed"),
}


def key(event: str, suffix: str = "") -> str:
    """A component key for an event: AsyncAPI keys allow no colon."""
    return event.replace(":", ".") + suffix


class Schemas:
    """JSON Schemas of models, their shared definitions gathered under components."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}

    def ref(self, model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        self.defs.update(schema.pop("$defs", {}))
        self.defs[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}


def _message(event: str, payload: dict[str, Any], summary: str) -> dict[str, Any]:
    return {"name": event, "title": event, "summary": summary, "payload": payload}


def asyncapi_document(version: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the default namespace's events."""
    schemas = Schemas()
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    channel = {"$ref": "#/channels/room"}
    for event, spec in RECEIVED.items():
        messages[key(event)] = _message(event, schemas.ref(spec.payload), spec.summary)
        ack = schemas.ref(spec.ack)
        no = schemas.ref(BidRefused if spec.ack is BidAck else Refused)
        messages[key(event, ".ack")] = _message(
            event, {"oneOf": [ack, no]}, f"The acknowledgement of {event}"
        )
        codes = ", ".join(f"`{code}`" for code in (*spec.errors, *ANY_EVENT))
        operations[key(event, ".receive")] = {
            "action": "receive",
            "channel": channel,
            "summary": spec.summary,
            "description": f"Sent with an acknowledgement. Refusal codes: {codes}.",
            "messages": [{"$ref": f"#/channels/room/messages/{key(event)}"}],
            "reply": {
                "channel": channel,
                "messages": [{"$ref": f"#/channels/room/messages/{key(event, '.ack')}"}],
            },
        }
    for event, (model, summary) in SENT.items():
        sent = key(event, ".sent")
        messages[sent] = _message(event, schemas.ref(model), summary)
        operations[sent] = {
            "action": "send",
            "channel": channel,
            "summary": summary,
            "messages": [{"$ref": f"#/channels/room/messages/{sent}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Shopcast realtime rooms",
            "version": version,
            "description": "Socket.IO 5 events of a show's room (docs/realtime.md). Every "
            "client event is sent with an acknowledgement; its message's `name` is the "
            "Socket.IO event name.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "shopcast": {
                "host": "127.0.0.1:8080",
                "protocol": "ws",
                "pathname": "/socket.io/",
                "description": "The server's own origin; auth: {token, viewer_id}, both optional",
            }
        },
        "channels": {
            "room": {
                "address": "/",
                "title": "The default namespace",
                "description": "Rooms are per show (stream:join) and per account (order:status)",
                "messages": messages,
            }
        },
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.defs.items()))},
    }


class _Plain(yaml.SafeDumper):
    """Writes a shared reference in full each time: anchors would make the file hard to read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def asyncapi_yaml(version: str) -> str:
    """The document as docs/asyncapi.yaml holds it: in the order written, emoji as they are."""
    document = asyncapi_document(version)
    return yaml.dump(document, Dumper=_Plain, sort_keys=False, allow_unicode=True, width=100)
