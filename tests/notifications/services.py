"""A push service on 127.0.0.1 that decrypts what it gets (RFC 8291) and checks its VAPID
signature (RFC 8292), as a browser's push service would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


@dataclass
class Device:
    """A browser's subscription: its own P-256 key and auth secret, as a browser makes them."""

    name: str
    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    status: int = 201  # what the push service answers for it
    first: list[int] = field(default_factory=list)  # answers before that, one per push

    @property
    def public(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def subscription(self) -> dict[str, Any]:
        keys = {"p256dh": b64url(self.public), "auth": b64url(self.auth)}
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": keys}

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 section 3.4 and RFC 8188: the aes128gcm body of one record."""
        salt, record_size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        sender = body[21 : 21 + id_length]
        ciphertext = body[21 + id_length :]
        assert id_length == 65 and len(ciphertext) <= record_size
        shared = self.key.exchange(
            ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        )
        prk_key = _hmac(self.auth, shared)
        ikm = _hmac(prk_key, b"WebPush: info\x00" + self.public + sender + b"\x01")
        prk = _hmac(salt, ikm)
        cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
        nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None).rstrip(b"\x00")
        assert padded.endswith(b"\x02"), "the last record ends with the delimiter 0x02"
        return padded[:-1]


@dataclass
class Push:
    device: str
    payload: dict[str, Any]
    claims: dict[str, Any]
    headers: dict[str, str]


class PushService:
    """Checks every push like a real one would, then answers the device's status."""

    def __init__(self, server_key: str) -> None:
        self.server_key = server_key  # the VAPID public key the server says it signs with
        self.devices: dict[str, Device] = {}
        self.received: list[Push] = []
        self.server: TestServer | None = None

    def device(self, name: str, status: int = 201, first: tuple[int, ...] = ()) -> Device:
        assert self.server is not None
        url = str(self.server.make_url(f"/push/{name}"))
        device = Device(name, url, status=status, first=list(first))
        self.devices[name] = device
        return device

    async def handle(self, request: web.Request) -> web.Response:
        device = self.devices[request.match_info["name"]]
        scheme, _, params = request.headers["Authorization"].partition(" ")
        assert scheme == "vapid", "RFC 8292 section 3: Authorization: vapid t=..., k=..."
        fields = dict(part.strip().split("=", 1) for part in params.split(","))
        assert fields["k"] == self.server_key
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
        origin = f"{request.scheme}://{request.host}"
        claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=origin)
        assert 0 < claims["exp"] - time.time() <= 24 * 3600, "RFC 8292: at most 24 hours"
        assert claims["sub"].startswith(("mailto:", "https://"))
        assert request.headers["Content-Encoding"] == "aes128gcm"
        assert int(request.headers["TTL"]) > 0
        payload = json.loads(device.decrypt(await request.read()))
        self.received.append(Push(device.name, payload, claims, dict(request.headers)))
        return web.Response(status=device.first.pop(0) if device.first else device.status)

    def to(self, name: str) -> list[Push]:
        return [p for p in self.received if p.device == name]
