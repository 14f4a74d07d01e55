"""REST for a stream's room: chat history and the moderation the dashboard calls."""

from __future__ import annotations

from typing import Any

from api.accounts.users import require_user
from api.realtime import chat, moderation
from api.realtime.schemas import ChatMessageOut, ChatQuery, SanctionOut, SlowModeIn, SlowModeOut
from api.shows import announcements
from api.shows.access import viewable_stream
from api.shows.announcements import RoomChange
from api.shows.models import SanctionKind
from api.web.context import Context
from api.web.errors import ApiError
from api.web.openapi import operation
from api.web.routing import Api, Auth

api = Api()
MODERATED = (401, 403, 404)


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/chat",
    summary="Recent chat",
    tag="rooms",
    auth=Auth.OPTIONAL,
    query=ChatQuery,
    response=list[ChatMessageOut],
    errors=(401, 403, 404, 422),
)
async def chat_history(ctx: Context, stream_id: str, query: ChatQuery) -> list[ChatMessageOut]:
    stream = await viewable_stream(ctx, stream_id)
    messages = await chat.history(ctx.session, stream.id, query.limit)
    return [ChatMessageOut.model_validate(m) for m in messages]


def _announce(ctx: Context, change: RoomChange) -> None:
    services = ctx.services

    async def job() -> None:
        await announcements.announce(services.rooms, services.bus, change)

    ctx.after_commit(job)


@api.route(
    "DELETE",
    "/api/v1/streams/{stream_id}/chat/{message_id}",
    summary="Delete a chat message",
    tag="rooms",
    status=204,
    errors=MODERATED,
)
async def delete_chat(ctx: Context, stream_id: str, message_id: str) -> None:
    actor = require_user(ctx)
    _announce(ctx, await moderation.delete_message(ctx.session, actor, stream_id, message_id))


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/sanctions",
    summary="Muted and banned users",
    tag="rooms",
    response=list[SanctionOut],
    errors=MODERATED,
)
async def list_sanctions(ctx: Context, stream_id: str) -> list[SanctionOut]:
    await moderation.moderated_stream(ctx.session, require_user(ctx), stream_id)
    return [
        SanctionOut.model_validate(s) for s in await moderation.sanctions(ctx.session, stream_id)
    ]


@api.route(
    "PUT",
    "/api/v1/streams/{stream_id}/sanctions/{user_id}/{kind}",
    summary="Mute or ban a user in this stream",
    tag="rooms",
    status=204,
    errors=(*MODERATED, 409, 422),
    description="kind is `mute` (cannot chat) or `ban` (cannot watch or chat; their "
    "messages disappear).",
)
async def add_sanction(ctx: Context, stream_id: str, user_id: str, kind: str) -> None:
    actor = require_user(ctx)
    change = await moderation.sanction(ctx.session, actor, stream_id, user_id, _kind(kind))
    _announce(ctx, change)


@api.route(
    "DELETE",
    "/api/v1/streams/{stream_id}/sanctions/{user_id}/{kind}",
    summary="Unmute or unban",
    tag="rooms",
    status=204,
    errors=(*MODERATED, 422),
)
async def remove_sanction(ctx: Context, stream_id: str, user_id: str, kind: str) -> None:
    actor = require_user(ctx)
    _announce(ctx, await moderation.lift(ctx.session, actor, stream_id, user_id, _kind(kind)))


@api.route(
    "PUT",
    "/api/v1/streams/{stream_id}/slow-mode",
    summary="Set slow mode",
    tag="rooms",
    body=SlowModeIn,
    response=SlowModeOut,
    errors=(*MODERATED, 415, 422),
)
async def set_slow_mode(ctx: Context, stream_id: str, body: SlowModeIn) -> SlowModeOut:
    actor = require_user(ctx)
    _announce(ctx, await moderation.slow_mode(ctx.session, actor, stream_id, body.seconds))
    return SlowModeOut(slow_mode_seconds=body.seconds)


def _kind(kind: str) -> SanctionKind:
    try:
        return SanctionKind(kind)
    except ValueError:
        raise ApiError(422, "invalid", "kind must be mute or ban") from None


def _transport(method: str) -> dict[str, Any]:
    return operation(
        f"socketio_{method}",
        "The Socket.IO connection (Engine.IO: long-polling, then an upgrade to WebSocket)",
        tag="realtime",
        produces="text/plain",
        description="The events, their payloads and acks are in docs/realtime.md. A token in the "
        "connection's auth signs the socket in; sockets from other origins are refused unless "
        "SHOPCAST_CORS_ORIGINS lists them.",
    )


SOCKET_PATHS: dict[str, dict[str, Any]] = {
    "/socket.io/": {method: _transport(method) for method in ("get", "post", "options")}
}
