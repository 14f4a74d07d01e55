"""HLS over HTTP: the live LL-HLS playlist (blocking reload, delta updates), its media, and
the replay once the show's recording is published. A simulcast show's other renditions are
under ``/hls/<stream id>/<rid>/``, listed with the main one by ``master.m3u8``.

Every answer passes the show's one access check (`authorise_viewer`): its audience, and the
ban of a caller who sends a token. With local storage the replay's files are served here too
(`/media/vod/<stream id>/...`, ahead of the store's static route), under the same check.
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from api.identity.models import User
from api.shows.models import Audience, Stream
from api.streaming.signaling import MEDIA, authorise_viewer
from api.streaming.viewer_delay import part_served
from api.web.context import SERVICES
from api.web.errors import ApiError, Handler, not_found
from live.recordings import Recordings
from recorder import Recorder
from twins.objectstore import LocalStorage, ObjectStore

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MEDIA_TYPES = {".mp4": "video/mp4", ".m4s": "video/iso.segment", ".jpg": "image/jpeg"}
# A blocked reload waits at most this long (a few part targets), then 503 tells the player.
BLOCK_SECONDS = 3.0
RECORDINGS = web.AppKey("recordings", Recordings)
_REPLAY_FILE = re.compile(r"(?:[A-Za-z0-9_-]{1,16}/)?[A-Za-z0-9_-][A-Za-z0-9._-]*")


CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization",
    "Access-Control-Expose-Headers": "Location, Retry-After, X-Request-ID",
}


@web.middleware
async def hls_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Players on any origin may load HLS: every answer under /hls/ (and a local replay's files)
    says so, errors and the redirect to the replay included, and preflights (a player sending a
    token) succeed."""
    if not request.path.startswith(("/hls/", "/media/vod/")):
        return await handler(request)
    if request.method == "OPTIONS":
        return web.Response(status=204, headers={**CORS, "Access-Control-Max-Age": "600"})
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(CORS)
        raise
    response.headers.update(CORS)
    return response


async def _viewer(request: web.Request) -> tuple[Stream, User | None]:
    """The stream, if the caller may watch it, and the caller (HLS players may send a bearer
    token)."""
    async with request.app[SERVICES].reads() as session:
        stream = await session.get(Stream, request.match_info["stream_id"])
    if stream is None:
        raise not_found("Stream")
    return stream, await authorise_viewer(request, stream)


async def _stream(request: web.Request) -> Stream:
    return (await _viewer(request))[0]


async def _redirect_to_owner(request: web.Request, stream: Stream) -> None:
    """The show is recorded on another node (the one carrying its media): send the player there."""
    owner = await request.app[MEDIA].registry.owner(stream.id)
    if owner is not None:
        raise web.HTTPTemporaryRedirect(f"{owner}{request.path_qs}")


def _number(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise ApiError(400, "invalid_query", f"{name} must be a non-negative integer")
    return int(raw)


def _no_recording() -> ApiError:
    return ApiError(
        404, "no_recording", "This stream has no HLS recording (yet)", headers={"Retry-After": "5"}
    )


async def _live(request: web.Request, stream: Stream) -> Recorder:
    """The recording being made of the show (or of its rendition), or why there is none."""
    recordings = request.app[RECORDINGS]
    if recordings.recorder(stream.id) is None:
        if stream.vod_url:
            raise web.HTTPTemporaryRedirect(stream.vod_url)
        await _redirect_to_owner(request, stream)
        raise _no_recording()
    recorder = recordings.recorder(stream.id, request.match_info.get("rid"))
    if recorder is None:
        raise not_found("Rendition")
    return recorder


async def master(request: web.Request) -> web.StreamResponse:
    stream = await _stream(request)
    await _live(request, stream)
    text = request.app[RECORDINGS].master_text(stream.id)
    if text is None:
        raise _no_recording()
    return web.Response(
        text=text, content_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache"}
    )


async def playlist(request: web.Request) -> web.StreamResponse:
    stream = await _stream(request)
    recorder = await _live(request, stream)
    msn, part = _number(request, "_HLS_msn"), _number(request, "_HLS_part")
    if part is not None and msn is None:
        raise ApiError(400, "invalid_query", "_HLS_part needs _HLS_msn")
    if msn is not None:
        if recorder.too_far(msn, part):
            raise ApiError(400, "invalid_query", "That part is too far in the future")
        if not await recorder.wait_for(msn, part, timeout=BLOCK_SECONDS):
            raise ApiError(503, "not_yet", "The part is late; retry", headers={"Retry-After": "1"})
    skip = request.query.get("_HLS_skip", "")
    text = recorder.playlist_text(skip if skip in ("YES", "v2") else False)
    response = web.Response(
        text=text, content_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache"}
    )
    return response


async def media(request: web.Request) -> web.StreamResponse:
    stream, viewer = await _viewer(request)
    recorder = request.app[RECORDINGS].recorder(stream.id, request.match_info.get("rid"))
    name = request.match_info["name"]
    if recorder is None:
        await _redirect_to_owner(request, stream)
    path = await recorder.resolve(name, timeout=BLOCK_SECONDS) if recorder else None
    if path is None:
        raise not_found("Media")
    part_served(request, stream, viewer, name)
    immutable = name.endswith((".mp4", ".m4s"))
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable" if immutable else "max-age=10",
        "Content-Type": MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
    }
    return web.FileResponse(path, headers=headers)


def _replay_files(store: LocalStorage) -> web.RouteDef:
    async def replay_file(request: web.Request) -> web.StreamResponse:
        stream = await _stream(request)
        name = request.match_info["name"]
        if not _REPLAY_FILE.fullmatch(name):
            raise not_found("Media")
        path = store.path_for(f"vod/{stream.id}/{name}")
        if not await asyncio.to_thread(path.is_file):
            raise not_found("Media")
        shared = "public" if stream.audience == Audience.EVERYONE else "private"
        kind = PLAYLIST_TYPE if path.suffix == ".m3u8" else MEDIA_TYPES.get(path.suffix)
        headers = {
            "Cache-Control": f"{shared}, max-age=3600",
            "Content-Type": kind or "application/octet-stream",
        }
        return web.FileResponse(path, headers=headers)

    # Everything under /media/vod/ comes here, so the store's static route never serves a replay.
    return web.get(r"/media/vod/{stream_id}/{name:.*}", replay_file)


def routes(store: ObjectStore) -> list[web.RouteDef]:
    rendition = "/hls/{stream_id}/{rid:[A-Za-z0-9_-]{1,16}}"
    served = [
        web.get("/hls/{stream_id}/master.m3u8", master),
        web.get("/hls/{stream_id}/index.m3u8", playlist),
        web.get(r"/hls/{stream_id}/{name:[A-Za-z0-9._-]+}", media),
        web.get(f"{rendition}/index.m3u8", playlist),
        web.get(rendition + r"/{name:[A-Za-z0-9._-]+}", media),
    ]
    return [*served, _replay_files(store)] if isinstance(store, LocalStorage) else served
