"""Web Push: a message encrypted for one device (RFC 8291, aes128gcm) and sent to its push
service (RFC 8030) with a VAPID signature (RFC 8292).

The VAPID JWT depends only on the push service's origin, so one is signed per origin and kept
until near its expiry; each message costs one ECDH exchange and one AES-GCM seal.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass

import aiohttp
import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from yarl import URL

from api.web.outbound import Outbound

JWT_SECONDS = 12 * 3600  # RFC 8292 allows 24 h; push services refuse longer
RENEW_BEFORE_SECONDS = 3600
TTL_SECONDS = 3600  # a go-live older than an hour is not worth waking a phone for
SEND_SECONDS = 10.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Device:
    """Where one subscription receives: its push service URL and its keys (base64url)."""

    id: str
    endpoint: str
    p256dh: str
    auth: str


def public_key_of(private_raw: str) -> str:
    """The application server key browsers subscribe with: the uncompressed P-256 point."""
    key = ec.derive_private_key(int.from_bytes(unb64url(private_raw), "big"), ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def encrypt(payload: bytes, device: Device) -> bytes:
    """``payload`` sealed for ``device``: RFC 8291's aes128gcm body, an ephemeral key's own."""
    return bytes(
        http_ece.encrypt(
            payload,
            salt=os.urandom(16),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            dh=unb64url(device.p256dh),
            auth_secret=unb64url(device.auth),
            version="aes128gcm",
        )
    )


class WebPush:
    """Sends to push services. States: open -> closed (``close``)."""

    def __init__(self, private_raw: str, subject: str, *, private_networks: bool) -> None:
        self._vapid = Vapid02.from_raw(private_raw.encode())
        self._subject = subject
        self._signed: dict[str, tuple[float, str]] = {}  # origin -> (expires, Authorization)
        self._http = Outbound(
            aiohttp.ClientTimeout(total=SEND_SECONDS), private_networks=private_networks
        )

    def authorization(self, endpoint: str) -> str:
        """``vapid t=<JWT>,k=<public key>`` for the endpoint's origin, signed at most once per
        origin per renewal."""
        origin = str(URL(endpoint).origin())
        now = time.time()
        expires, header = self._signed.get(origin, (0.0, ""))
        if expires - now < RENEW_BEFORE_SECONDS:
            expires = now + JWT_SECONDS
            claims = {"aud": origin, "exp": int(expires), "sub": self._subject}
            header = str(self._vapid.sign(claims)["Authorization"])
            self._signed[origin] = (expires, header)
        return header

    async def send(self, device: Device, payload: bytes) -> int:
        """Deliver ``payload`` to ``device``; the push service's status. Raises
        ``aiohttp.ClientError`` or ``TimeoutError`` when it could not be reached."""
        headers = {
            "Authorization": self.authorization(device.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(TTL_SECONDS),
            "Urgency": "high",
        }
        return await self._http.post(device.endpoint, encrypt(payload, device), headers)

    async def close(self) -> None:
        await self._http.close()
