"""What every API handler receives: its database session, the caller and the node's services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from stripe import StripeClient

from api.identity.auth import Passwords, TokenIssuer
from api.identity.ice import IceConfig
from api.identity.models import User
from twins.bus import Bus
from twins.counters import Counters
from twins.ratelimit import Limit, RateLimiter


@dataclass(frozen=True)
class Audience:
    """Who watches a show now, summed over the nodes, by way of watching."""

    webrtc: int
    hls: int

    @property
    def viewers(self) -> int:
        return self.webrtc + self.hls


class Rooms(Protocol):
    """The realtime rooms of this node, as the REST side needs them."""

    async def audience(self, stream_id: str) -> Audience:
        """Who watches the show now, on every node (``api.realtime.viewers``)."""
        ...

    async def to_stream(self, stream_id: str, event: str, data: dict[str, Any]) -> None:
        """Send an event to everyone in a stream's room, on every node."""
        ...

    async def to_user(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        """Send an event to every socket of one account, on every node."""
        ...

    async def flush(self, stream_id: str, session: AsyncSession) -> None:
        """The show ended: close watch sessions and write this node's pending analytics in
        ``session``'s transaction."""
        ...


@dataclass(frozen=True)
class StripeAccount:
    """The platform's Stripe account (``api.commerce.payments``): its API client, which sends
    over this node's event loop, and the secret that signs the events Stripe posts us."""

    client: StripeClient
    webhook_secret: SecretStr


@dataclass(frozen=True)
class Services:
    """The node's long-lived collaborators, built once by the composition root."""

    sessions: async_sessionmaker[AsyncSession]
    reads: async_sessionmaker[AsyncSession]
    tokens: TokenIssuer
    passwords: Passwords
    limiter: RateLimiter
    auth_limit: Limit
    ice: IceConfig
    public_url: str
    bus: Bus
    counters: Counters
    rooms: Rooms
    stripe: StripeAccount | None  # None: Stripe Checkout is not configured


SERVICES = web.AppKey("services", Services)


@dataclass
class Context:
    """One API call: the request, its transaction and the authenticated user, if any."""

    request: web.Request
    session: AsyncSession
    user: User | None
    services: Services
    committed: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def client_ip(self) -> str:
        return self.request.remote or "unknown"

    def after_commit(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` once the transaction has committed (never for a rolled-back call)."""
        self.committed.append(job)
