"""What every API handler receives: its database session, the caller and the node's services."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import TokenIssuer
from api.models import User
from server.ratelimit import Limit, RateLimiter
from sfu.ice import IceConfig


@dataclass(frozen=True)
class Services:
    """The node's long-lived collaborators, built once by the composition root."""

    sessions: async_sessionmaker[AsyncSession]
    tokens: TokenIssuer
    limiter: RateLimiter
    auth_limit: Limit
    ice: IceConfig
    public_url: str


SERVICES = web.AppKey("services", Services)


@dataclass
class Context:
    """One API call: the request, its transaction and the authenticated user, if any."""

    request: web.Request
    session: AsyncSession
    user: User | None
    services: Services

    def client_ip(self) -> str:
        return self.request.remote or "unknown"
