"""Passwords (argon2) and access tokens (JWT, HS256 only)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALGORITHM = "HS256"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verifying against a real hash keeps a login for an unknown email as slow as a wrong password.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


class Passwords:
    """Hashes and checks passwords off the event loop, which also forwards media: each on a
    worker thread (argon2-cffi releases the GIL while it hashes), at most ``concurrency`` at
    once. One takes 64 MiB and a fifth of a CPU-second or more, so a burst of sign-ins waits
    for its turn on the loop instead of taking every core."""

    def __init__(self, concurrency: int) -> None:
        self._turns = asyncio.Semaphore(concurrency)

    async def hash(self, password: str) -> str:
        async with self._turns:
            return await asyncio.to_thread(hash_password, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        async with self._turns:
            return await asyncio.to_thread(verify_password, password_hash, password)


class InvalidToken(Exception):
    """The bearer token is malformed, forged or expired."""


class TokenIssuer:
    """Signs and checks access tokens; the algorithm list is fixed so ``alg: none`` never passes."""

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {"sub": user_id, "iat": issued, "exp": issued + self.ttl_seconds, "typ": "access"}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def subject(self, token: str) -> str:
        return self.claims(token)[0]

    def claims(self, token: str) -> tuple[str, float]:
        """The user id a valid token names, and when it expires (unix time)."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        if claims.get("typ") != "access" or not isinstance(claims["sub"], str):
            raise InvalidToken("not an access token")
        return claims["sub"], float(claims["exp"])

    def viewer_key(self) -> str:
        """A new key for an anonymous viewer: random, signed, so no client picks its own."""
        nonce = secrets.token_urlsafe(12)
        return f"{nonce}.{self._viewer_mac(nonce)}"

    def is_viewer_key(self, key: object) -> bool:
        """Whether ``key`` is one ``viewer_key`` made with this secret."""
        if not isinstance(key, str) or len(key) > 64:
            return False
        nonce, _, mac = key.partition(".")
        return hmac.compare_digest(self._viewer_mac(nonce), mac)

    def _viewer_mac(self, nonce: str) -> str:
        digest = hmac.new(self._secret.encode(), f"viewer:{nonce}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()[:16]).decode().rstrip("=")


def new_publish_token() -> tuple[str, str]:
    """A stream's publish token and the hash we keep of it."""
    token = secrets.token_urlsafe(32)
    return token, hash_publish_token(token)


def hash_publish_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def publish_token_matches(token: str, stored_hash: str | None) -> bool:
    return stored_hash is not None and hmac.compare_digest(hash_publish_token(token), stored_hash)
