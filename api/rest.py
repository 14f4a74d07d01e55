"""The REST API as one collection of endpoints."""

from __future__ import annotations

from api import (
    accounts,
    catalog,
    health,
    media,
    observability,
    orders,
    pins,
    room,
    streams,
    webhooks,
)
from api.routing import Api


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
