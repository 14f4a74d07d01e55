"""The REST API as one collection of endpoints."""

from __future__ import annotations

from api.accounts import users as accounts
from api.catalog import product_media as media
from api.catalog import products as catalog
from api.commerce import orders, pins
from api.realtime import endpoints as room
from api.shows import streams
from api.streaming import observability
from api.web import health
from api.web.routing import Api
from api.webhooks import webhooks


def rest_api() -> Api:
    root = Api()
    for module in (
        health,
        accounts,
        catalog,
        media,
        streams,
        room,
        pins,
        orders,
        webhooks,
        observability,
    ):
        root.include(module.api)
    return root
