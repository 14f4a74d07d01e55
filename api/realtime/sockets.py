"""Socket.IO rooms per stream: chat, reactions, viewer counts and room events.

A ``Realtime`` holds this node's members and rooms. States: new -> running (its tickers
aggregate reactions, count viewers and flush analytics) -> closed (watch time settled, the
last analytics flushed). Across nodes, emits go through python-socketio's Redis manager,
counters through ``Counters`` and room changes through the ``Bus``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.commerce.auctions import Auctions
from api.commerce.schemas import BidIn
from api.identity.auth import InvalidToken, TokenIssuer
from api.identity.models import User
from api.realtime import chat, moderation
from api.realtime.bids import BID_TICK, BidNews
from api.realtime.chat import CHAT_TICK, ChatLines
from api.realtime.payloads import (
    Ack,
    BidEventIn,
    ChatIn,
    JoinIn,
    MessageIn,
    PlaybackIn,
    PrepareIn,
    ProductIn,
    ReactionIn,
    Refusal,
    SlowIn,
    StreamIn,
    UserIn,
    retry_seconds,
)
from api.realtime.reactions import REACTION_TICK, Reactions, reaction_totals
from api.realtime.rooms import (
    Member,
    Room,
    load_policy,
    load_products,
    room_name,
    user_room,
    write_stats,
)
from api.realtime.viewers import VIEWER_TICK, ViewerCount, audience_keys, audience_of
from api.shows import announcements
from api.shows.access import can_watch
from api.shows.announcements import ProductsChanged, RoomChange, RoomChanged
from api.shows.lineup import stream_products
from api.shows.models import SanctionKind
from api.web.context import Audience
from api.web.errors import ApiError, database_unreachable
from live.messages import CueAdded, StatusChanged
from twins.bus import Bus
from twins.counters import Counters
from twins.periodic import Periodic
from twins.ratelimit import Limit, RateLimiter

log = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 2
MAX_ROOMS_PER_SOCKET = 8

FLUSH_EVERY = 5.0
# Taps on a product are analytics: a viewer's honest taps fit, a script's are refused uncounted.
PRODUCT_EVENT_LIMIT = Limit(rate=1, burst=10)


class Realtime:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        *,
        node: str,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        tokens: TokenIssuer,
        limiter: RateLimiter,
        counters: Counters,
        bus: Bus,
        auctions: Auctions,
    ) -> None:
        self.sio = sio
        self.node = node
        self._sessions = sessions
        self._reads = reads
        self._tokens = tokens
        self._limiter = limiter
        self._counters = counters
        self._bus = bus
        self._auctions = auctions
        self.members: dict[str, Member] = {}
        self.rooms: dict[str, Room] = {}
        self._tickers: list[Periodic] = []
        self._dropping: set[asyncio.Task[None]] = set()
        self._viewers = ViewerCount(node, counters, sio)
        self._reactions = Reactions(limiter, counters, self.to_stream)
        self._chat_lines = ChatLines(sessions, limiter, counters, self.to_stream)
        self._bid_news = BidNews(self.to_stream)
        bus.subscribe(RoomChanged, self._on_room_changed)
        bus.subscribe(StatusChanged, self._on_status)
        bus.subscribe(ProductsChanged, self._on_products)
        bus.subscribe(CueAdded, self._on_cue)
        sio.on("connect", self._connect)
        sio.on("disconnect", self._disconnect)
        events: dict[str, tuple[type[BaseModel], Callable[[str, Any], Awaitable[Ack]]]] = {
            "stream:join": (JoinIn, self._join),
            "stream:leave": (StreamIn, self._leave),
            "stream:playback": (PlaybackIn, self._playback),
            "product:click": (ProductIn, self._click),
            "product:ask": (ProductIn, self._ask),
            "stream:chat": (ChatIn, self._chat),
            "stream:reaction": (ReactionIn, self._reaction),
            "stream:prepare": (PrepareIn, self._prepare),
            "auction:bid": (BidEventIn, self._bid),
            "chat:delete": (MessageIn, self._delete_message),
            "moderation:mute": (UserIn, self._moderate(moderation.sanction, SanctionKind.MUTE)),
            "moderation:unmute": (UserIn, self._moderate(moderation.lift, SanctionKind.MUTE)),
            "moderation:ban": (UserIn, self._moderate(moderation.sanction, SanctionKind.BAN)),
            "moderation:unban": (UserIn, self._moderate(moderation.lift, SanctionKind.BAN)),
            "moderation:slow_mode": (SlowIn, self._slow_mode),
        }
        for name, (model, handler) in events.items():
            sio.on(name, self._guarded(model, handler))

    # Broadcaster

    async def to_stream(self, stream_id: str, event: str, data: dict[str, Any]) -> None:
        await self.sio.emit(event, data, room=room_name(stream_id))

    async def to_user(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        await self.sio.emit(event, data, room=user_room(user_id))

    async def audience(self, stream_id: str) -> Audience:
        """Who watches the show now, on every node (as of their last 1 s reports)."""
        totals = await self._counters.viewers(audience_keys(stream_id))
        return audience_of(totals, stream_id)

    async def flush(self, stream_id: str, session: AsyncSession) -> None:
        """Write this node's pending analytics for one stream in ``session``'s transaction."""
        room = self.rooms.get(stream_id)
        if room is not None:
            # The show is over: everyone still watching ends their session now.
            now = time.monotonic()
            for sid in list(room.viewers):
                self._viewers.stop_watching(room, self.members[sid], now)
            stats, room.stats = room.stats, room.stats.carry()
            await write_stats(session, stream_id, stats)

    # Lifecycle

    async def start(self) -> None:
        for tick, every in (
            (self._tick_chat, CHAT_TICK),
            (self._tick_reactions, REACTION_TICK),
            (self._bid_news.tick, BID_TICK),
            (self._tick_viewers, VIEWER_TICK),
            (self.flush_all, FLUSH_EVERY),
        ):
            ticker = Periodic(tick, every)
            ticker.start()
            self._tickers.append(ticker)

    async def close(self) -> None:
        for ticker in self._tickers:
            await ticker.stop()
        self._tickers.clear()
        await asyncio.gather(*self._dropping, return_exceptions=True)
        now = time.monotonic()
        for member in self.members.values():
            for stream_id in list(member.rooms):
                self._settle(member, stream_id, now)
        await self._tick_chat()
        await self._tick_reactions()
        await self._bid_news.tick()
        await self.flush_all()

    # Connection

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        auth = auth if isinstance(auth, dict) else {}
        user, expires_at = None, None
        token = auth.get("token")
        if token is not None:
            try:
                user_id, expires_at = self._tokens.claims(str(token))
            except InvalidToken:
                raise socketio.exceptions.ConnectionRefusedError("unauthorized") from None
            async with self._reads() as session:
                user = await session.get(User, user_id)
            if user is None:
                raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        # One browser is one viewer, signed in or not: the key it was issued comes first, so
        # signing in mid-show does not count the person again.
        key = auth.get("viewer_id")
        if self._tokens.is_viewer_key(key):
            viewer_key = str(key)
        elif user is not None:
            viewer_key = user.id
        else:
            viewer_key = self._tokens.viewer_key()
        self.members[sid] = Member(sid, user, viewer_key, expires_at=expires_at)
        if user is not None:
            await self.sio.enter_room(sid, user_room(user.id))

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        member = self.members.pop(sid, None)
        if member is not None:
            now = time.monotonic()
            for stream_id in list(member.rooms):
                self._settle(member, stream_id, now)

    def _guarded(
        self, model: type[BaseModel], handler: Callable[[str, Any], Awaitable[Ack]]
    ) -> Callable[[str, Any], Awaitable[Ack]]:
        async def event(sid: str, data: Any = None) -> Ack:
            # Each event runs in a task of its own (async_handlers): what it binds stays there.
            structlog.contextvars.bind_contextvars(sid=sid)
            member = self.members.get(sid)
            if member is None:
                return {"ok": False, "error": "not_connected"}
            if member.expires_at is not None and time.time() >= member.expires_at:
                self._drop(sid)
                return {"ok": False, "error": "unauthorized", "message": "the token expired"}
            try:
                payload = model.model_validate(data)
                if stream_id := getattr(payload, "stream_id", None):
                    structlog.contextvars.bind_contextvars(stream_id=stream_id)
                return await handler(sid, payload)
            except ValidationError:
                return {"ok": False, "error": "invalid", "message": "malformed payload"}
            except Refusal as exc:
                return {"ok": False, "error": exc.code, "message": str(exc), **exc.extra}
            except ApiError as exc:
                return {"ok": False, "error": exc.code, "message": exc.message}
            except DBAPIError as exc:
                if not database_unreachable(exc):
                    log.exception("socket event failed")
                    return {"ok": False, "error": "internal"}
                log.warning("database unavailable for a socket event: %s", exc.orig)
                return {
                    "ok": False,
                    "error": "database_unavailable",
                    "message": "the database is unreachable; retry shortly",
                    "retry_after": DATABASE_RETRY_SECONDS,
                }
            except PoolTimeout:
                log.warning("no database connection free for a socket event")
                return {
                    "ok": False,
                    "error": "database_busy",
                    "message": "the database is busy; retry shortly",
                    "retry_after": DATABASE_RETRY_SECONDS,
                }
            except Exception:
                log.exception("socket event failed")
                return {"ok": False, "error": "internal"}

        return event

    # Rooms

    async def _room(self, stream_id: str) -> Room:
        room = self.rooms.get(stream_id)
        if room is None:
            async with self._reads() as session:
                policy = await load_policy(session, stream_id)
                if policy is None:
                    raise Refusal("not_found", "no such stream")
                titles, pinned = await load_products(session, stream_id)
            room = self.rooms.get(stream_id)
            if room is None:
                room = self.rooms[stream_id] = Room(policy)
                room.catalogue(titles)
                room.pins = {product_id: set() for product_id in pinned}
        return room

    def _joined(self, sid: str, stream_id: str) -> tuple[Member, Room]:
        member = self.members[sid]
        room = self.rooms.get(stream_id)
        if room is None or stream_id not in member.rooms:
            raise Refusal("not_joined", "join the stream first")
        return member, room

    async def _join(self, sid: str, body: JoinIn) -> Ack:
        member = self.members[sid]
        if body.stream_id not in member.rooms and len(member.rooms) >= MAX_ROOMS_PER_SOCKET:
            # One viewer watches a show or two: a socket in a thousand rooms counts a thousand.
            raise Refusal("too_many_rooms", f"a socket joins at most {MAX_ROOMS_PER_SOCKET} shows")
        room = await self._room(body.stream_id)
        policy = room.policy
        if member.user and member.user.id in policy.banned:
            raise Refusal("banned", "you are banned from this stream")
        async with self._reads() as session:
            if member.user is not None:
                member.user = await self._current(session, sid)
            if not await can_watch(session, member.user, body.stream_id):
                raise Refusal("audience_restricted", f"this stream is for {policy.audience}")
            messages = await chat.history(session, body.stream_id)
            products = await stream_products(session, body.stream_id)
            totals = await reaction_totals(session, self._counters, body.stream_id)
        if self.members.get(sid) is not member:
            # The socket left while we read: joining now would count a viewer who is gone.
            return {"ok": False, "error": "not_connected"}
        if body.stream_id not in member.rooms:
            await self.sio.enter_room(sid, room_name(body.stream_id))
            member.rooms[body.stream_id] = time.monotonic()
            member.playback[body.stream_id] = body.playback
            room.members.add(sid)
            await self._viewers.start_watching(room, member)
        return {
            "ok": True,
            "viewer_id": member.viewer_key
            if self._tokens.is_viewer_key(member.viewer_key)
            else None,
            "stream": policy.public(),
            "viewers": room.remote + len(room.viewers),
            "chat": messages,
            "products": [p.model_dump(mode="json") for p in products],
            "reactions": totals,
        }

    async def _leave(self, sid: str, body: StreamIn) -> Ack:
        member = self.members[sid]
        if body.stream_id in member.rooms:
            self._settle(member, body.stream_id, time.monotonic())
            await self.sio.leave_room(sid, room_name(body.stream_id))
        return {"ok": True}

    async def _playback(self, sid: str, body: PlaybackIn) -> Ack:
        member, room = self._joined(sid, body.stream_id)
        await self._viewers.switch_playback(room, member, body.playback)
        return {"ok": True}

    async def _product(self, sid: str, body: ProductIn, event: str) -> Room | None:
        """The room, when the event is valid and within the viewer's rate; None when its
        sender does not count (the seller)."""
        member, room = self._joined(sid, body.stream_id)
        if room.policy.finished:
            raise Refusal("stream_ended", "the stream has ended")
        if body.product_id not in room.products:
            raise Refusal("unknown_product", "no such product in this stream")
        if sid not in room.viewers:
            return None
        wait = await self._limiter.acquire(f"{event}:{member.viewer_key}", PRODUCT_EVENT_LIMIT)
        if wait:
            raise Refusal("rate_limited", "slow down", retry_after=retry_seconds(wait))
        return room

    async def _click(self, sid: str, body: ProductIn) -> Ack:
        room = await self._product(sid, body, "click")
        if room is not None:
            room.stats.clicks[body.product_id] += 1
            room.stats.minute().clicks += 1
        return {"ok": True}

    async def _ask(self, sid: str, body: ProductIn) -> Ack:
        room = await self._product(sid, body, "ask")
        if room is not None:
            room.stats.inquiries[body.product_id] += 1
        return {"ok": True}

    def _settle(self, member: Member, stream_id: str, now: float) -> None:
        """The member left the room: their watch session ends."""
        room = self.rooms.get(stream_id)
        if room is not None:
            self._viewers.stop_watching(room, member, now)
            room.members.discard(member.sid)
        member.rooms.pop(stream_id)
        member.playback.pop(stream_id)

    async def _chat(self, sid: str, body: ChatIn) -> Ack:
        member, room = self._joined(sid, body.stream_id)
        message = await self._chat_lines.add(member, room, body.text)
        return {"ok": True, "message": message}

    async def _reaction(self, sid: str, body: ReactionIn) -> Ack:
        member, room = self._joined(sid, body.stream_id)
        await self._reactions.add(member, room, body.emoji)
        return {"ok": True}

    async def _prepare(self, sid: str, body: PrepareIn) -> Ack:
        member = self.members[sid]
        room = await self._room(body.stream_id)
        if member.user is None or member.user.id != room.policy.owner_id:
            raise Refusal("forbidden", "only the seller prepares the show")
        if room.policy.finished:
            raise Refusal("stream_ended", "the stream has ended")
        countdown = max(0, min(body.countdown, 10))
        await self.to_stream(
            body.stream_id,
            "stream:status",
            {
                "stream_id": body.stream_id,
                "status": room.policy.status,
                "preparing": True,
                "countdown": countdown,
            },
        )
        return {"ok": True}

    async def _bid(self, sid: str, body: BidEventIn) -> Ack:
        """A bid, acked as the REST one answers: ``status`` accepted, or the refusal's code
        with its details (the high bid, the next minimum, the end)."""
        member, _ = self._joined(sid, body.stream_id)
        if member.user is None:
            raise Refusal("sign_in_required", "sign in to bid")
        fields = body.model_dump(exclude={"stream_id", "auction_id"})
        bid = BidIn.model_validate({**fields, "playback": member.playback[body.stream_id]})
        auctions = self._auctions
        try:
            async with auctions.turn(body.auction_id, bid):
                async with self._sessions.begin() as session:
                    placed = await auctions.bid(
                        session, member.user, body.auction_id, bid, body.stream_id
                    )
                auctions.placed(placed)
        except ApiError as refused:
            return {
                "ok": False,
                "status": refused.code,
                "error": refused.code,
                "message": refused.message,
                **refused.details,
            }
        self._bid_news.add(placed.events)
        return {"ok": True, **placed.out.model_dump(mode="json")}

    # Moderation over the socket: the same actions as the REST endpoints.

    async def _moderator(self, sid: str) -> User:
        """The account as it is now, not as it was at connect: a demoted moderator moderates
        nothing, and a deleted account's socket ends."""
        member = self.members[sid]
        if member.user is None:
            raise Refusal("sign_in_required", "sign in to moderate")
        async with self._reads() as session:
            member.user = await self._current(session, sid)
        return member.user

    async def _current(self, session: AsyncSession, sid: str) -> User:
        """The signed-in account of a socket, read again; a deleted one ends the socket."""
        member = self.members[sid]
        assert member.user is not None
        user = await session.get(User, member.user.id)
        if user is None:
            self._drop(sid)
            raise Refusal("unauthorized", "the account no longer exists")
        return user

    def _drop(self, sid: str) -> None:
        """End a socket once its refusal's ack has gone out."""

        async def drop() -> None:
            await asyncio.sleep(0.1)
            await self.sio.disconnect(sid)

        task = asyncio.create_task(drop())
        self._dropping.add(task)
        task.add_done_callback(self._dropping.discard)

    async def _apply(self, change: Callable[[AsyncSession], Awaitable[RoomChange]]) -> Ack:
        async with self._sessions.begin() as session:
            result = await change(session)
        await announcements.announce(self, self._bus, result)
        return {"ok": True}

    async def _delete_message(self, sid: str, body: MessageIn) -> Ack:
        actor = await self._moderator(sid)
        return await self._apply(
            lambda s: moderation.delete_message(s, actor, body.stream_id, body.message_id)
        )

    def _moderate(
        self, action: Callable[..., Awaitable[RoomChange]], kind: SanctionKind
    ) -> Callable[[str, Any], Awaitable[Ack]]:
        async def handle(sid: str, body: UserIn) -> Ack:
            actor = await self._moderator(sid)
            return await self._apply(lambda s: action(s, actor, body.stream_id, body.user_id, kind))

        return handle

    async def _slow_mode(self, sid: str, body: SlowIn) -> Ack:
        actor = await self._moderator(sid)
        return await self._apply(
            lambda s: moderation.slow_mode(s, actor, body.stream_id, body.seconds)
        )

    async def _on_room_changed(self, message: RoomChanged) -> None:
        await self._reload_policy(message.stream_id, message.banned)

    async def _on_status(self, message: StatusChanged) -> None:
        await self._reload_policy(message.stream_id, [])
        if message.finished:
            await self._tick_reactions()  # the last reactions counted before they are dropped
            await self._counters.forget(message.stream_id)

    async def _reload_policy(self, stream_id: str, banned: list[str]) -> None:
        """The room's rules changed on some node: read them again; ``banned`` users leave."""
        room = self.rooms.get(stream_id)
        if room is None:
            return
        async with self._reads() as session:
            policy = await load_policy(session, stream_id)
        if policy is not None:
            room.policy = policy
        for user_id in banned:
            for sid in [
                s
                for s in room.members
                if (m := self.members.get(s)) and m.user and m.user.id == user_id
            ]:
                self._settle(self.members[sid], stream_id, time.monotonic())
                await self.sio.leave_room(sid, room_name(stream_id))
                await self.sio.emit(
                    "stream:banned", {"stream_id": stream_id}, to=sid, ignore_queue=True
                )

    async def _on_products(self, message: ProductsChanged) -> None:
        room = self.rooms.get(message.stream_id)
        if room is None:
            return
        async with self._reads() as session:
            titles, _ = await load_products(session, message.stream_id)
        room.catalogue(titles)

    async def _on_cue(self, cue: CueAdded) -> None:
        """A product was pinned or unpinned: impressions start or stop for it."""
        room = self.rooms.get(cue.stream_id)
        if room is None:
            return
        if cue.action == "pin":
            keys = [self.members[sid].viewer_key for sid in room.viewers]
            room.pinned(cue.product_id, keys)
        elif cue.action == "unpin":
            room.unpinned(cue.product_id)

    # Tickers

    async def _tick_chat(self) -> None:
        await self._chat_lines.tick(self.rooms)

    async def _tick_reactions(self) -> None:
        await self._reactions.tick(self.rooms)

    async def _tick_viewers(self) -> None:
        await self._viewers.tick(self.rooms, self.members)

    async def flush_all(self) -> None:
        """Write every room's pending analytics now (what the periodic flush does)."""
        for stream_id, room in list(self.rooms.items()):
            await self._flush_room(room)
            if not room.members and not room.pending and not room.outbox:
                self.rooms.pop(stream_id, None)

    async def _flush_room(self, room: Room) -> None:
        if not room.stats.changed_since(room.written):
            return
        stats, room.stats = room.stats, room.stats.carry()
        try:
            async with self._sessions.begin() as session:
                await write_stats(session, room.policy.stream_id, stats)
        except Exception:
            room.stats.merge(stats)
            raise
        room.written = stats.running()
