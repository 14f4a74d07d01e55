"""WHIP and WHEP in the OpenAPI document: they speak SDP, so they are described by hand."""

from __future__ import annotations

from api.streaming.signaling import TRICKLE


def _sdp_operation(summary: str, who: str, errors: dict[str, str]) -> dict[str, object]:
    sdp = {"application/sdp": {"schema": {"type": "string"}}}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "summary": summary,
        "tags": ["media"],
        "security": [{"bearer": []}] if who == "publisher" else [{}, {"bearer": []}],
        "parameters": [
            {"name": "stream_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "requestBody": {"required": True, "content": sdp},
        "responses": {
            "201": {
                "description": "SDP answer; Location, ETag and Link (ice-server) headers",
                "content": sdp,
            },
            **{code: {"description": text, "content": error} for code, text in errors.items()},
        },
    }


_COMMON = {
    "400": "Malformed SDP",
    "401": "Missing or invalid bearer token",
    "404": "No such stream",
    "413": "Offer over 64 KiB",
    "415": "Not application/sdp",
    "429": "Too many offers from this address; see Retry-After",
    "422": "Nothing in the offer that Shopcast can receive or send",
    "503": "Node at capacity; see Retry-After",
}
_SESSION: dict[str, object] = {
    "patch": {
        "summary": "Trickle ICE candidates (If-Match: the session's ETag)",
        "tags": ["media"],
        "requestBody": {"content": {TRICKLE: {"schema": {"type": "string"}}}},
        "responses": {
            "204": {"description": "Applied"},
            "404": {"description": "No session"},
            "412": {"description": "ETag mismatch"},
            "415": {"description": "Not a trickle-ice-sdpfrag"},
            "422": {"description": "ICE restart is not supported: POST again"},
            "428": {"description": "If-Match missing"},
        },
    },
    "delete": {
        "summary": "End the session",
        "tags": ["media"],
        "responses": {"200": {"description": "Ended"}, "404": {"description": "No session"}},
    },
}

SIGNALING_PATHS: dict[str, dict[str, object]] = {
    "/whip/{stream_id}": {
        "post": _sdp_operation(
            "Publish (WHIP, RFC 9725) with the stream's publish token",
            "publisher",
            {
                **_COMMON,
                "403": "The token belongs to another stream",
                "409": "The stream has ended",
            },
        )
    },
    "/whep/{stream_id}": {
        "post": _sdp_operation(
            "Watch (WHEP); a bearer access token where the audience needs one",
            "viewer",
            {
                **_COMMON,
                "403": "Not in the stream's audience",
                "409": "Not live yet (see Retry-After) or ended",
                "503": "Node at capacity, or (edge node) the show's node unreachable",
            },
        )
    },
    "/whip/{stream_id}/{session_id}": _SESSION,
    "/whep/{stream_id}/{session_id}": _SESSION,
}
