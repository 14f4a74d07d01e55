"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from sqlalchemy import text

from api.web.context import Context
from api.web.routing import Api, Auth
from api.web.schemas import Health

api = Api()


@api.route(
    "GET",
    "/healthz",
    summary="The process is up",
    tag="operations",
    auth=Auth.NONE,
    response=Health,
)
async def healthz(ctx: Context) -> Health:
    return Health(status="ok")


@api.route(
    "GET",
    "/readyz",
    summary="The database answers",
    tag="operations",
    auth=Auth.NONE,
    response=Health,
    errors=(503,),
)
async def readyz(ctx: Context) -> Health:
    await ctx.session.execute(text("SELECT 1"))
    return Health(status="ok")
