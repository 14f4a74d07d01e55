"""A server whose notifications reach a push service and an SMTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from peers.mailbox import Inbox, smtp_server
from server.settings import Settings
from tests.notifications.services import PushService, b64url


@pytest.fixture
def vapid() -> tuple[str, str]:
    """A VAPID key pair made here: (private d, public point), base64url."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(private), b64url(public)


@pytest.fixture
async def push_service(vapid: tuple[str, str]) -> AsyncIterator[PushService]:
    service = PushService(vapid[1])
    app = web.Application()
    app.router.add_post("/push/{name}", service.handle)
    service.server = TestServer(app, host="127.0.0.1")
    await service.server.start_server()
    yield service
    await service.server.close()


@pytest.fixture
async def inbox() -> AsyncIterator[tuple[Inbox, int]]:
    """aiosmtpd on 127.0.0.1, on a port of its own."""
    handler = Inbox()
    async with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture
def settings(
    settings: Settings,
    vapid: tuple[str, str],
    inbox: tuple[Inbox, int],
    push_service: PushService,
) -> Settings:
    changes: dict[str, Any] = {
        "vapid_private_key": vapid[0],
        "vapid_subject": "mailto:ops@shopcast.example",
        "push_private_networks": True,
        "smtp_host": "127.0.0.1",
        "smtp_port": inbox[1],
        "smtp_starttls": False,
        "smtp_from": "live@shopcast.example",
    }
    return Settings(**{**settings.model_dump(), **changes, "_env_file": None})
