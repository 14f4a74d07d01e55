"""The HTTP API as one collection: every domain's endpoints and the whole OpenAPI document."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from api.accounts import users
from api.analytics import report
from api.catalog import product_media, products
from api.commerce import auctions, checkout, fulfilment, orders, pins, purchases
from api.notifications import preferences
from api.realtime import comments, endpoints
from api.realtime.endpoints import SOCKET_PATHS
from api.shows import calendar, discovery, lineup, schedule, streams
from api.streaming import observability, viewer_delay
from api.streaming.spec import STREAMING_PATHS
from api.web import health
from api.web.openapi import build_spec
from api.web.pages import PAGE_PATHS
from api.web.routing import Api
from api.webhooks import webhooks


def rest_api() -> Api:
    root = Api()
    for module in (
        health,
        users,
        products,
        product_media,
        streams,
        schedule,
        discovery,
        calendar,
        lineup,
        report,
        endpoints,
        comments,
        pins,
        orders,
        auctions,
        checkout,
        fulfilment,
        purchases,
        webhooks,
        preferences,
        observability,
        viewer_delay,
    ):
        root.include(module.api)
    return root


def openapi_spec(api: Api) -> dict[str, Any]:
    """The OpenAPI document of ``api``, with the routes that are not JSON endpoints described
    by hand: WHIP and WHEP, HLS, files, metrics, the local upload target, Socket.IO, pages."""
    hand = {**STREAMING_PATHS, **product_media.UPLOAD_PATHS, **SOCKET_PATHS, **PAGE_PATHS}
    return build_spec(api, version=version("shopcast"), extra_paths=hand)
