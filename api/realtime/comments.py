"""Replay comments: what viewers say about a moment of the replay, shown on its timeline.

Distinct from live chat: a comment points at a time of the replay (``at_seconds``), is made
once the replay is published, and stays. The show's ``enable_comments`` turns them off; its
chat sanctions apply (a muted or banned account cannot comment) and its seller and moderators
delete comments as they delete chat lines (the row stays, hidden).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from api.accounts.users import require_user
from api.db import utcnow
from api.identity.models import User
from api.realtime.chat import clean_text
from api.realtime.models import ReplayComment
from api.realtime.moderation import STAFF
from api.realtime.schemas import ChatAuthorOut
from api.shows.access import admit, viewable_stream
from api.shows.models import Sanction, SanctionKind, Stream
from api.web.context import Context
from api.web.errors import ApiError, forbidden, not_found, within_limit
from api.web.routing import Api, Auth
from api.web.schemas import Input, Output
from twins.ratelimit import Limit

api = Api()
COMMENT_LIMIT = Limit(rate=0.2, burst=5)  # a burst of five, then one every 5 s
LONGEST_REPLAY = 24 * 3600.0


class CommentIn(Input):
    at_seconds: Annotated[float, Field(ge=0, le=LONGEST_REPLAY, description="Where in the replay")]
    text: Annotated[str, Field(min_length=1, max_length=500)]


class CommentOut(Output):
    id: str
    stream_id: str
    user: ChatAuthorOut
    at_seconds: float
    text: str
    created_at: str


def _out(comment: ReplayComment, author: User) -> CommentOut:
    return CommentOut(
        id=comment.id,
        stream_id=comment.stream_id,
        user=ChatAuthorOut(id=author.id, display_name=author.display_name, role=author.role),
        at_seconds=comment.at_seconds,
        text=comment.text,
        created_at=comment.created_at.isoformat(),
    )


def _comments_on(stream: Stream) -> None:
    if not stream.enable_comments:
        raise ApiError(409, "comments_off", "The seller turned comments off for this show")


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/comments",
    summary="Comments on a show's replay, in the video's order",
    tag="rooms",
    auth=Auth.OPTIONAL,
    response=list[CommentOut],
    errors=(401, 403, 404, 409),
)
async def comments(ctx: Context, stream_id: str) -> list[CommentOut]:
    stream = await viewable_stream(ctx, stream_id)
    _comments_on(stream)
    rows = await ctx.session.scalars(
        select(ReplayComment)
        .options(joinedload(ReplayComment.user))
        .where(ReplayComment.stream_id == stream.id, ReplayComment.deleted_at.is_(None))
        .order_by(ReplayComment.at_seconds, ReplayComment.created_at)
        .limit(1000)
    )
    return [_out(c, c.user) for c in rows]


@api.route(
    "POST",
    "/api/v1/streams/{stream_id}/comments",
    summary="Comment on a moment of the replay",
    tag="rooms",
    status=201,
    body=CommentIn,
    response=CommentOut,
    errors=(400, 401, 403, 404, 409, 413, 415, 422, 429),
    description="Once the show's replay is published (409 no_replay before), unless comments "
    "are off (409 comments_off); muted or banned accounts are refused (403 muted, banned).",
)
async def add_comment(ctx: Context, stream_id: str, body: CommentIn) -> CommentOut:
    author = require_user(ctx)
    stream = await viewable_stream(ctx, stream_id)
    _comments_on(stream)
    await admit(ctx.session, author, stream)
    if stream.vod_url is None:
        raise ApiError(409, "no_replay", "Comments open with the replay")
    if await ctx.session.get(Sanction, (stream.id, author.id, SanctionKind.MUTE)) is not None:
        raise ApiError(403, "muted", "You are muted in this show")
    text = clean_text(body.text)
    if not text:
        raise ApiError(422, "invalid", "A comment needs some text", {"field": "text"})
    wait = "You comment too fast; try again in a moment"
    await within_limit(ctx.services.limiter, f"comment:{author.id}", COMMENT_LIMIT, wait)
    comment = ReplayComment(
        stream_id=stream.id, user_id=author.id, at_seconds=body.at_seconds, text=text
    )
    ctx.session.add(comment)
    await ctx.session.flush()
    return _out(comment, author)


@api.route(
    "DELETE",
    "/api/v1/streams/{stream_id}/comments/{comment_id}",
    summary="Delete a replay comment (its author, the seller or a moderator)",
    tag="rooms",
    status=204,
    errors=(401, 403, 404),
)
async def delete_comment(ctx: Context, stream_id: str, comment_id: str) -> None:
    actor = require_user(ctx)
    comment = await ctx.session.get(ReplayComment, comment_id)
    if comment is None or comment.stream_id != stream_id or comment.deleted_at is not None:
        raise not_found("Comment")
    stream = await ctx.session.get(Stream, stream_id)
    assert stream is not None  # the comment's foreign key
    if actor.id not in (comment.user_id, stream.owner_id) and actor.role not in STAFF:
        raise forbidden("Only its author, the seller and moderators delete a comment")
    comment.deleted_at = utcnow()
