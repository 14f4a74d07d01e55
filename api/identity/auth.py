"""Passwords (argon2) and access tokens (JWT, HS256 only)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALGORITHM = "HS256"
T = TypeVar("T")
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
    worker thread of its own pool (argon2-cffi releases the GIL while it hashes), at most
    ``concurrency`` at once, at the lowest CPU priority. One takes 64 MiB and a fifth of a
    CPU-second or more, so a burst of sign-ins waits for its turn on the loop instead of taking
    every core. States: open -> closed (``close``: the pool's threads end)."""

    def __init__(self, concurrency: int) -> None:
        self._turns = asyncio.Semaphore(concurrency)
        self._threads = ThreadPoolExecutor(concurrency, "argon2", initializer=_yield_to_media)

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        async with self._turns:
            return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)


def _yield_to_media() -> None:
    """A hashing thread runs at nice 19 (argon2's lane threads inherit it): on a CPU that it
    shares with the event loop, the loop runs first."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


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
