"""ICE servers handed to publishers and viewers, with time-limited TURN REST credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class IceServer:
    """One entry of an RTCConfiguration's ``iceServers``."""

    urls: str
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class IceConfig:
    """The STUN/TURN servers of this deployment.

    TURN servers get coturn ``use-auth-secret`` credentials: the username carries its own
    expiry, the password is an HMAC of it, and the shared secret never leaves the server.
    """

    urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl_seconds: int = 3600

    def servers_for(self, user: str, now: float | None = None) -> list[IceServer]:
        expiry = int((time.time() if now is None else now) + self.turn_ttl_seconds)
        servers = []
        for url in self.urls:
            if url.startswith(("turn:", "turns:")) and self.turn_secret:
                username = f"{expiry}:{user}"
                servers.append(IceServer(url, username, turn_password(self.turn_secret, username)))
            else:
                servers.append(IceServer(url))
        return servers


def turn_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
