"""The routes of api/streaming/ in the OpenAPI document, described by hand because they speak
SDP, HLS and files, not JSON: WHIP and WHEP with their sessions, live HLS, the local store's
files (replays, product media), and ``/metrics``."""

from __future__ import annotations

from typing import Any

from api.streaming.hls import MEDIA_TYPES, PLAYLIST_TYPE
from api.streaming.signaling import SDP, TRICKLE
from api.web.openapi import files, operation
from api.web.routing import Auth

_OFFER_ERRORS = {
    400: "Malformed SDP",
    401: "Missing or invalid bearer token",
    404: "No such stream",
    413: "Offer over 64 KiB",
    415: "Not application/sdp",
    422: "Nothing in the offer that Shopcast can receive or send",
    429: "Too many offers from this address; see Retry-After",
    503: "Node at capacity; see Retry-After",
}
_ANSWER = "SDP answer; Location, ETag and Link (ice-server) headers"
_PREFLIGHT = "CORS preflight (WHEP: any origin; WHIP: the configured ones)"


def _offer(operation_id: str, summary: str, auth: Auth, errors: dict[int, str]) -> dict[str, Any]:
    """POST of an SDP offer (WHIP or WHEP) and its CORS preflight, which names Accept-Post."""
    kind = operation_id.split("_")[0]
    return {
        "post": operation(
            operation_id,
            summary,
            tag="media",
            status=201,
            success=_ANSWER,
            produces=SDP,
            consumes=SDP,
            auth=auth,
            errors={**_OFFER_ERRORS, **errors},
        ),
        "options": operation(
            f"{kind}_options", _PREFLIGHT + "; Accept-Post", tag="media", status=204
        ),
    }


def _session(kind: str) -> dict[str, Any]:
    """PATCH and DELETE of one WHIP or WHEP session, at the URL its POST answered."""
    auth = Auth.REQUIRED if kind == "whip" else Auth.NONE
    return {
        "patch": operation(
            f"{kind}_patch_session",
            "Trickle ICE candidates (If-Match: the session's ETag)",
            tag="media",
            status=204,
            success="Applied",
            consumes=TRICKLE,
            auth=auth,
            errors={
                400: "Malformed ICE fragment",
                404: "No session",
                412: "ETag mismatch",
                413: "Fragment over 64 KiB",
                415: "Not a trickle-ice-sdpfrag",
                422: "ICE restart is not supported: POST again",
                428: "If-Match missing",
            },
        ),
        "delete": operation(
            f"{kind}_delete_session",
            "End the session",
            tag="media",
            success="Ended",
            auth=auth,
            errors={404: "No session"},
        ),
        "options": operation(
            f"{kind}_session_options", _PREFLIGHT, tag="media", status=204, success="Allowed"
        ),
    }


def _hls(
    operation_id: str, summary: str, produces: str, errors: dict[int, str] | None = None
) -> dict[str, Any]:
    """A live HLS file: the show's audience decides; another node's show redirects there."""
    return {
        "get": operation(
            operation_id,
            summary,
            tag="hls",
            produces=produces,
            auth=Auth.OPTIONAL,
            errors={
                403: "Not in the stream's audience",
                404: "No such stream, rendition or file",
                **(errors or {}),
            },
            description="307 to the node that carries the show when it is not this one; "
            "307 to the replay (vod_url) once the show has ended.",
        )
    }


def _product_video(operation_id: str, summary: str, produces: str) -> dict[str, Any]:
    return {
        "get": operation(
            operation_id,
            summary,
            tag="files",
            produces=produces,
            errors={404: "No such video, or not processed yet"},
            description="The URL is the video's `url` (HLS) or `details.dash_url` (DASH) once "
            "its state is `ready`; the tracks it names are in the folders beside it.",
        )
    }


_PLAYLIST_ERRORS = {
    400: "_HLS_part without _HLS_msn, or a part too far ahead",
    503: "The part asked for is late; see Retry-After",
}
_SEGMENT = ", ".join(sorted(set(MEDIA_TYPES.values())))

STREAMING_PATHS: dict[str, dict[str, Any]] = {
    "/whip/{stream_id}": _offer(
        "whip_publish",
        "Publish (WHIP, RFC 9725) with the stream's publish token",
        Auth.REQUIRED,
        {403: "The token belongs to another stream", 409: "The stream has ended"},
    ),
    "/whep/{stream_id}": _offer(
        "whep_play",
        "Watch (WHEP); a bearer access token where the audience needs one",
        Auth.OPTIONAL,
        {
            403: "Not in the stream's audience",
            409: "Not live yet (see Retry-After) or ended",
            503: "Node at capacity, or (edge node) the show's node unreachable",
        },
    ),
    "/whip/{stream_id}/{session_id}": _session("whip"),
    "/whep/{stream_id}/{session_id}": _session("whep"),
    "/hls/{stream_id}/master.m3u8": _hls(
        "hls_master", "The live show's master playlist (its renditions)", PLAYLIST_TYPE
    ),
    "/hls/{stream_id}/index.m3u8": _hls(
        "hls_playlist",
        "The live LL-HLS playlist; _HLS_msn and _HLS_part block until that part exists, "
        "_HLS_skip=YES|v2 asks for a delta update",
        PLAYLIST_TYPE,
        _PLAYLIST_ERRORS,
    ),
    "/hls/{stream_id}/{name}": _hls(
        "hls_media", "The live recording's init segment, a segment, a part or the poster", _SEGMENT
    ),
    "/hls/{stream_id}/{rid}/index.m3u8": _hls(
        "hls_rendition_playlist",
        "A simulcast layer's LL-HLS playlist (SHOPCAST_HLS_LADDER)",
        PLAYLIST_TYPE,
        _PLAYLIST_ERRORS,
    ),
    "/hls/{stream_id}/{rid}/{name}": _hls(
        "hls_rendition_media", "A simulcast layer's init segment, segment or part", _SEGMENT
    ),
    "/media/vod/{stream_id}/{name}": {
        "get": operation(
            "replay_file",
            "A replay's playlist or media, from the local store (without SHOPCAST_S3_BUCKET)",
            tag="hls",
            produces=PLAYLIST_TYPE,
            auth=Auth.OPTIONAL,
            errors={403: "Not in the stream's audience", 404: "No such stream or file"},
        )
    },
    "/media/{path}": files(
        "store_file", "A file of the local store: product photos, videos and their renditions"
    ),
    # A processed product video, from the local store (with S3, the bucket's URLs serve the same).
    "/media/media/{media_id}/master.m3u8": _product_video(
        "product_video_hls", "An uploaded video's HLS master playlist", PLAYLIST_TYPE
    ),
    "/media/media/{media_id}/manifest.mpd": _product_video(
        "product_video_dash",
        "An uploaded video's DASH manifest (MPD), over the same CMAF segments as its HLS",
        "application/dash+xml",
    ),
    "/metrics": {
        "get": operation(
            "metrics",
            "Prometheus metrics of this node",
            tag="operations",
            produces="text/plain",
            errors={401: "SHOPCAST_METRICS_TOKEN is set and was not sent as the bearer token"},
            description="Without SHOPCAST_METRICS_TOKEN the per-show series name public shows "
            "only; with it, every show, for a bearer of that token.",
        )
    },
}
