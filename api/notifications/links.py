"""Unsubscribe links: a signed token names the user, the seller and the channel, so one click
(or a mail client's RFC 8058 one-click POST) turns that channel off without signing in."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import jwt

from api.notifications.models import Channel

AUDIENCE = "shopcast:unsubscribe"


class InvalidLink(Exception):
    """The token was not made by this server, or names nothing it can undo."""


@dataclass(frozen=True)
class Unsubscribe:
    user_id: str
    seller_id: str
    channel: Channel


class UnsubscribeLinks:
    """Signs and reads unsubscribe tokens with a key of their own, derived from the server's
    secret (an access token can never pass for one, nor the reverse). They do not expire: an
    old email's link must still work (RFC 8058)."""

    def __init__(self, secret: str, public_url: str) -> None:
        self._key = hmac.new(secret.encode(), b"unsubscribe links", hashlib.sha256).digest()
        self._public_url = public_url

    def token(self, user_id: str, seller_id: str, channel: Channel) -> str:
        claims = {"aud": AUDIENCE, "sub": user_id, "seller": seller_id, "ch": channel.value}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def page(self, token: str) -> str:
        """The link for people: a page that unsubscribes and says from what."""
        return f"{self._public_url}/unsubscribe?token={token}"

    def one_click(self, token: str) -> str:
        """The ``List-Unsubscribe`` URL a mail client POSTs to (RFC 8058)."""
        return f"{self._public_url}/api/v1/unsubscribe?token={token}"

    def read(self, token: str) -> Unsubscribe:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=AUDIENCE,
                options={"require": ["sub"]},
            )
            return Unsubscribe(str(claims["sub"]), str(claims["seller"]), Channel(claims["ch"]))
        except (jwt.InvalidTokenError, KeyError, ValueError) as exc:
            raise InvalidLink(str(exc)) from None
