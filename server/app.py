"""The composition root: the one place that builds Shopcast from its settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.metadata import version

from aiohttp import web

from api.auth import TokenIssuer
from api.context import SERVICES, Services
from api.errors import error_middleware
from api.rest import rest_api
from api.web import mount, security_headers
from server.database import create_engine, session_factory
from server.ratelimit import Limit, LocalRateLimiter
from server.settings import Settings
from sfu.ice import IceConfig


def build_app(settings: Settings) -> web.Application:
    """An aiohttp application wired from ``settings``; resources open and close with it."""
    engine = create_engine(settings.resolved_database_url)
    settings.resolved_media_dir.mkdir(parents=True, exist_ok=True)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[security_headers, error_middleware],
    )
    app[SERVICES] = Services(
        sessions=session_factory(engine),
        tokens=TokenIssuer(settings.ensure_jwt_secret(), settings.jwt_ttl_seconds),
        limiter=LocalRateLimiter(),
        auth_limit=Limit(rate=settings.auth_attempts_per_minute / 60, burst=settings.auth_burst),
        ice=IceConfig(
            urls=tuple(settings.ice_servers),
            turn_secret=settings.turn_secret.get_secret_value(),
            turn_ttl_seconds=settings.turn_ttl_seconds,
        ),
        public_url=settings.resolved_public_url,
    )

    async def database(app: web.Application) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app.cleanup_ctx.append(database)
    mount(app, rest_api(), version=version("shopcast"), cors_origins=settings.cors_origins)
    return app
