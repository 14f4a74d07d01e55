"""WHIP (RFC 9725) publishing and WHEP playback: SDP over HTTP in front of the SFU.

``POST /whip/{stream}`` with the stream's publish token, ``POST /whep/{stream}`` for viewers;
each answers 201 with the SDP answer, an unguessable session URL in ``Location``, an ``ETag``
and the ICE servers as ``Link`` headers. ``PATCH`` on the session URL trickles candidates,
``DELETE`` ends it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import structlog
from aiohttp import web
from sqlalchemy import select

from api.identity.auth import InvalidToken, hash_publish_token, publish_token_matches
from api.identity.ice import IceServer
from api.identity.models import User
from api.shows.access import admit
from api.shows.models import Stream
from api.web.context import SERVICES, Services
from api.web.errors import ApiError, not_found, within_limit
from api.web.routing import bearer_token
from live.states import FINISHED, StreamStatus
from sfu import (
    ClosedError,
    IceRestartUnsupportedError,
    MediaSession,
    NoMediaPortError,
    NotLiveError,
    Publisher,
    SdpError,
    Sfu,
    SfuError,
    UnsupportedMediaError,
)
from twins.ratelimit import Limit
from twins.registry import StreamRegistry

SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"
MAX_SDP_BYTES = 64 * 1024
RETRY_NOT_LIVE = "5"
RETRY_FULL = "10"
PULL_TIMEOUT_SECONDS = 10

log = logging.getLogger(__name__)
EXPOSED = "Location, ETag, Link, Retry-After, WWW-Authenticate, X-Request-ID"


@dataclass(frozen=True)
class Media:
    """What signaling needs beside the API's services."""

    sfu: Sfu
    max_sessions: int
    cors_origins: frozenset[str]
    registry: StreamRegistry
    limit: Limit  # offers per client address
    cascade: bool = False  # pull other nodes' shows instead of redirecting their viewers


MEDIA = web.AppKey("media", Media)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _etag(session: MediaSession) -> str:
    return '"' + hashlib.sha256(session.id.encode()).hexdigest()[:16] + '"'


def _link(server: IceServer) -> str:
    value = f'<{server.urls}>; rel="ice-server"'
    if server.username is not None and server.credential is not None:
        value += (
            f'; username="{server.username}"; credential="{server.credential}"'
            '; credential-type="password"'
        )
    return value


async def _offer(request: web.Request) -> str:
    if request.content_type != SDP:
        raise ApiError(415, "unsupported_media_type", f"Send the offer as {SDP}")
    if (request.content_length or 0) > MAX_SDP_BYTES:
        raise ApiError(413, "payload_too_large", "The offer is larger than 64 KiB")
    body = await request.content.read(MAX_SDP_BYTES + 1)
    if len(body) > MAX_SDP_BYTES:
        raise ApiError(413, "payload_too_large", "The offer is larger than 64 KiB")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_sdp", "The offer is not UTF-8 text") from None


async def _stream(services: Services, stream_id: str) -> Stream:
    async with services.reads() as session:
        stream = await session.get(Stream, stream_id)
    if stream is None:
        raise not_found("Stream")
    return stream


async def _authorise_publisher(request: web.Request, stream: Stream) -> None:
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("Send the stream's publish token as Authorization: Bearer")
    if publish_token_matches(token, stream.publish_token_hash):
        return
    async with request.app[SERVICES].reads() as session:
        other = await session.scalar(
            select(Stream.id).where(Stream.publish_token_hash == hash_publish_token(token))
        )
    if other is not None:
        raise ApiError(403, "forbidden", "This publish token belongs to another stream")
    raise _unauthorized("Invalid publish token: call go-live for a new one")


async def authorise_viewer(request: web.Request, stream: Stream) -> User | None:
    services = request.app[SERVICES]
    token = bearer_token(request)
    async with services.reads() as session:
        user = None
        if token is not None:
            try:
                user = await session.get(User, services.tokens.subject(token))
            except InvalidToken:
                raise _unauthorized("Invalid access token") from None
            if user is None:
                raise _unauthorized("The account of this token no longer exists")
        await admit(session, user, stream)
    return user


def _check_capacity(media: Media) -> None:
    if media.sfu.session_count() >= media.max_sessions:
        raise ApiError(
            503,
            "node_full",
            "This node is at capacity; retry shortly",
            headers={"Retry-After": RETRY_FULL},
        )


def _created(
    request: web.Request, kind: str, stream_id: str, session: MediaSession, answer: str, user: str
) -> web.Response:
    services = request.app[SERVICES]
    structlog.contextvars.bind_contextvars(session_id=session.id)
    log.info("%s session opened", kind.upper())
    response = web.Response(status=201, text=answer, content_type=SDP)
    response.headers["Location"] = f"/{kind}/{stream_id}/{session.id}"
    response.headers["ETag"] = _etag(session)
    for server in services.ice.servers_for(user):
        response.headers.add("Link", _link(server))
    return response


async def _pull(request: web.Request, stream_id: str, url: str) -> None:
    """Cascade: watch the show on its node, as this viewer (whose credentials go along)."""
    auth = request.headers.get("Authorization")
    headers = {"Content-Type": SDP} | ({"Authorization": auth} if auth else {})

    async def post_offer(offer: str) -> str:
        timeout = aiohttp.ClientTimeout(total=PULL_TIMEOUT_SECONDS)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(url, data=offer, headers=headers, allow_redirects=False) as response,
        ):
            if response.status == 201:
                return await response.text()
            if response.status == 409:
                raise NotLiveError(f"{url} answered 409")
            raise UpstreamError(f"{url} answered {response.status}")

    try:
        await request.app[MEDIA].sfu.pull(stream_id, post_offer)
    except NotLiveError:
        raise ApiError(
            409,
            "not_live",
            "Nobody is live on this stream yet",
            headers={"Retry-After": RETRY_NOT_LIVE},
        ) from None
    except (UpstreamError, SfuError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("pulling %s from %s failed: %s", stream_id, url, exc)
        raise ApiError(
            503,
            "upstream_unavailable",
            "The node carrying this show cannot be reached; retry shortly",
            headers={"Retry-After": RETRY_FULL},
        ) from None


class UpstreamError(Exception):
    """The node carrying a show refused this node's WHEP offer."""


def _redirect(owner: str, request: web.Request) -> web.Response:
    """RFC 9725 §4.3: the stream's media is on another node; the client POSTs there."""
    return web.Response(status=307, headers={"Location": f"{owner}{request.path_qs}"})


async def _negotiate(
    media: Media, call: Callable[[], Awaitable[tuple[MediaSession, str]]]
) -> tuple[MediaSession, str]:
    try:
        session, answer = await call()
    except SdpError as exc:
        raise ApiError(400, "invalid_sdp", f"Malformed SDP offer: {exc}") from None
    except UnsupportedMediaError as exc:
        raise ApiError(422, "unsupported_media", str(exc)) from None
    except NotLiveError:
        raise ApiError(
            409,
            "not_live",
            "Nobody is live on this stream yet",
            headers={"Retry-After": RETRY_NOT_LIVE},
        ) from None
    except ClosedError:
        raise ApiError(409, "stream_finished", "The stream has ended") from None
    except NoMediaPortError:
        raise ApiError(
            503,
            "no_media_port",
            "Every media port of this node is in use; retry shortly",
            headers={"Retry-After": RETRY_FULL},
        ) from None
    return session, answer


async def _limit_offers(request: web.Request, kind: str) -> None:
    """Each offer costs a peer connection: a client address gets a few per second."""
    services, media = request.app[SERVICES], request.app[MEDIA]
    await within_limit(
        services.limiter,
        f"{kind}:{request.remote}",
        media.limit,
        "Too many offers; wait before trying again",
    )


async def whip_publish(request: web.Request) -> web.StreamResponse:
    media = request.app[MEDIA]
    stream_id = request.match_info["stream_id"]
    await _limit_offers(request, "whip")
    stream = await _stream(request.app[SERVICES], stream_id)
    await _authorise_publisher(request, stream)
    if stream.status in FINISHED:
        raise ApiError(
            409, "stream_finished", f"The stream is {stream.status}", {"status": stream.status}
        )
    if (owner := await media.registry.owner(stream_id)) is not None:
        return _redirect(owner, request)
    offer = await _offer(request)
    _check_capacity(media)
    session, answer = await _negotiate(media, lambda: media.sfu.publish(stream_id, offer))
    await media.registry.claim(stream_id)
    return _created(request, "whip", stream_id, session, answer, stream.owner_id)


async def whep_play(request: web.Request) -> web.StreamResponse:
    media = request.app[MEDIA]
    stream_id = request.match_info["stream_id"]
    await _limit_offers(request, "whep")
    stream = await _stream(request.app[SERVICES], stream_id)
    user = await authorise_viewer(request, stream)
    if stream.status in FINISHED:
        raise ApiError(
            409, "stream_finished", f"The stream is {stream.status}", {"status": stream.status}
        )
    offer = await _offer(request)
    if stream.status == StreamStatus.CREATED:
        raise ApiError(
            409,
            "not_live",
            "Nobody is live on this stream yet",
            headers={"Retry-After": RETRY_NOT_LIVE},
        )
    if (owner := await media.registry.owner(stream_id)) is not None:
        if not media.cascade:
            return _redirect(owner, request)
        await _pull(request, stream_id, f"{owner}/whep/{stream_id}")
    _check_capacity(media)
    session, answer = await _negotiate(media, lambda: media.sfu.subscribe(stream_id, offer))
    return _created(request, "whep", stream_id, session, answer, user.id if user else "viewer")


async def _session(request: web.Request) -> MediaSession:
    media = request.app[MEDIA]
    kind = request.match_info["kind"]
    stream_id = request.match_info["stream_id"]
    session = media.sfu.session(stream_id, request.match_info["session_id"])
    if session is None or isinstance(session, Publisher) != (kind == "whip"):
        raise not_found("Session")
    if kind == "whip":
        await _authorise_publisher(request, await _stream(request.app[SERVICES], stream_id))
    return session


async def patch_session(request: web.Request) -> web.StreamResponse:
    session = await _session(request)
    match = request.headers.get("If-Match")
    if match is None:
        raise ApiError(428, "precondition_required", "Send If-Match with the session's ETag")
    if request.content_type != TRICKLE:
        raise ApiError(415, "unsupported_media_type", f"Send candidates as {TRICKLE}")
    fragment = (await request.content.read(MAX_SDP_BYTES + 1)).decode("utf-8", "replace")
    if len(fragment) > MAX_SDP_BYTES:
        raise ApiError(413, "payload_too_large", "The fragment is larger than 64 KiB")
    if match.strip() == "*":
        raise ApiError(
            422,
            "ice_restart_unsupported",
            "ICE restart is not supported: POST a new offer with the same token",
        )
    if match.strip() != _etag(session):
        raise ApiError(412, "precondition_failed", "The ETag does not match this ICE session")
    try:
        await session.add_ice_candidates(fragment)
    except IceRestartUnsupportedError:
        raise ApiError(
            422,
            "ice_restart_unsupported",
            "ICE restart is not supported: POST a new offer with the same token",
        ) from None
    except SdpError as exc:
        raise ApiError(400, "invalid_sdp", f"Malformed ICE fragment: {exc}") from None
    except (ClosedError, SfuError):
        raise not_found("Session") from None
    return web.Response(status=204)


async def delete_session(request: web.Request) -> web.StreamResponse:
    session = await _session(request)
    await session.close()
    return web.Response(status=200)


def _options(accept_post: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def options(request: web.Request) -> web.StreamResponse:
        response = web.Response(status=204)
        if accept_post:
            response.headers["Accept-Post"] = SDP
        return response

    return options


@web.middleware
async def signaling_cors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """CORS for WHEP from any site, and for WHIP from the configured origins.

    A player on a shop's own site is the product (an embedded live show), so WHEP answers every
    origin with ``*`` and no credentials: a public show needs nothing more, a restricted one
    needs the viewer's bearer token, which a page sends itself (``Authorization`` is allowed;
    no cookie ever authorises a request here). Publishing stays with the configured origins.
    """
    response = await handler(request)
    origin = request.headers.get("Origin")
    media = request.app.get(MEDIA)
    if not origin or media is None:
        return response
    path = request.path
    if path.startswith("/whep/"):
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif path.startswith("/whip/") and origin in media.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    else:
        return response
    response.headers["Access-Control-Expose-Headers"] = EXPOSED
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "POST, PATCH, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, If-Match"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def routes() -> list[web.RouteDef]:
    session = "/{kind:whip|whep}/{stream_id}/{session_id}"
    return [
        web.post("/whip/{stream_id}", whip_publish),
        web.post("/whep/{stream_id}", whep_play),
        web.options("/whip/{stream_id}", _options(accept_post=True)),
        web.options("/whep/{stream_id}", _options(accept_post=True)),
        web.patch(session, patch_session),
        web.delete(session, delete_session),
        web.options(session, _options(accept_post=False)),
    ]
