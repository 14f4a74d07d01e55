"""GStreamer's webrtcbin, an independent WHIP client, publishes; an aiortc viewer decodes it.

webrtcbin (Debian 12: GStreamer 1.22) offers ``a=setup:actpass`` without trickle, like OBS and
other non-browser clients. Answered ``active``, it became the DTLS server and failed with "no
shared cipher" (issue 15); the SFU now answers ``passive``. The server runs in this process,
in one network namespace; the GStreamer process runs in another (libnice never gathers on
loopback), joined by a veth pair.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import build_app
from server.settings import Settings
from tests.conftest import Account, Shop, eventually
from tests.faults.netns import inside
from tests.net.internet import Internet
from tests.net.internet import unavailable as namespaces_unavailable

from .gstreamer import GstPublisher
from .gstreamer import unavailable as gstreamer_unavailable
from .viewer import DecodingViewer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
Client = TestClient[Any, Any]
SDP = {"Content-Type": "application/sdp"}
PUBLISH_SECONDS = 8


SERVER_ADDRESS, CLIENT_ADDRESS = "10.78.0.1", "10.78.0.2"


@dataclass(frozen=True)
class VethLink:
    """The server's namespace and the GStreamer client's, joined by a veth pair."""

    server: str
    client: str


@pytest.fixture
def link() -> Iterator[VethLink]:
    if reason := namespaces_unavailable() or gstreamer_unavailable():
        pytest.skip(reason)
    with Internet() as net:
        server, client = net.host("server"), net.host("client")
        net.link(server, f"{SERVER_ADDRESS}/24", client, f"{CLIENT_ADDRESS}/24")
        yield VethLink(server, client)


@pytest.fixture
def interop_settings(sqlite_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        public_url=f"http://{SERVER_ADDRESS}",
        ice_host_addresses=[SERVER_ADDRESS],
        sfu_workers=1,
    )


async def live_stream(client: Client, shop: Shop) -> tuple[str, str, Account]:
    """A stream gone live: its id, its publish token and its seller."""
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    return sid, (await live.json())["publish_token"], seller


async def is_live(client: Client, sid: str) -> bool:
    return bool((await (await client.get(f"/api/v1/streams/{sid}")).json())["status"] == "live")


async def publisher_codecs(client: Client, sid: str, seller: Account) -> dict[str, str]:
    health = await (await client.get(f"/api/v1/streams/{sid}/health", headers=seller.auth)).json()
    return {track["kind"]: track["codec"] for track in health["media"]["publisher"]["tracks"]}


async def watch(client: Client, sid: str, viewer: DecodingViewer) -> None:
    watched = await client.post(
        f"/whep/{sid}", data=await viewer.offer(SERVER_ADDRESS), headers=SDP
    )
    assert watched.status == 201, await watched.text()
    await viewer.accept(await watched.text())


@pytest.mark.parametrize(
    ("arguments", "answered", "video"),
    [
        (("--codec", "vp8"), "passive", "video/VP8"),
        (("--codec", "x264"), "passive", "video/H264"),
        (("--codec", "openh264"), "passive", "video/H264"),
        # webrtcbin then becomes the DTLS server: aiortc's client offers only ECDHE-ECDSA
        # suites, so it needs an ECDSA certificate instead of its own RSA one.
        (("--codec", "vp8", "--setup", "passive", "--ecdsa-certificate"), "active", "video/VP8"),
    ],
    ids=["vp8", "x264", "openh264", "vp8-passive-offer"],
)
async def test_gstreamer_publishes_and_a_viewer_decodes_it(
    link: VethLink,
    interop_settings: Settings,
    sqlite_url: str,
    aiohttp_client: Any,
    tmp_path: Path,
    arguments: tuple[str, ...],
    answered: str,
    video: str,
) -> None:
    viewer = DecodingViewer()
    publisher: GstPublisher | None = None
    try:
        with inside(link.server):
            client = await aiohttp_client(
                build_app(interop_settings), server_kwargs={"host": SERVER_ADDRESS}
            )
            sid, token, seller = await live_stream(client, Shop(client, sqlite_url))
            publisher = await GstPublisher.start(
                link.client,
                str(client.make_url(f"/whip/{sid}")),
                token,
                tmp_path / "gstreamer.log",
                *arguments,
                *("--seconds", str(PUBLISH_SECONDS)),
            )
            answer = await publisher.event("answer", 20)
            assert answer["status"] == 201, answer["sdp"]
            assert f"a=setup:{answered}" in answer["sdp"]
            await publisher.event("state", 10, connection="connected")
            await eventually(lambda: is_live(client, sid), 10, "the stream never went live")
            codecs = await publisher_codecs(client, sid, seller)
            assert codecs == {"video": video, "audio": "audio/opus"}

            await watch(client, sid, viewer)
            await eventually(lambda: viewer.frames >= 10, 10, "the viewer decoded no video")
            decoded = viewer.frames
            await eventually(lambda: viewer.frames >= decoded + 30, 5, "decoding stalled")
            assert viewer.size == (320, 240)

            deleted = await publisher.event("deleted", PUBLISH_SECONDS + 10)
            assert deleted["status"] == 200
            assert await publisher.exit_status(10) == 0
    finally:
        try:
            if publisher is not None:
                await publisher.stop()
        finally:
            await viewer.close()
