"""Fixtures for media-plane tests: an SFU gathering on loopback, aiortc publishers/viewers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from peers.webrtc import PublisherPeer, ViewerPeer, wait_until
from sfu import IceSettings, Publisher, Sfu, SfuEvent, SfuSettings, Subscriber

LOOPBACK_ICE = IceSettings(host_addresses=("127.0.0.1",))


@dataclass
class Harness:
    """An SFU plus the client peers a test created (closed at teardown)."""

    sfu: Sfu
    events: list[SfuEvent] = field(default_factory=list)
    peers: list[PublisherPeer | ViewerPeer] = field(default_factory=list)

    async def publish(
        self, room: str = "room", **kwargs: object
    ) -> tuple[PublisherPeer, Publisher]:
        peer = PublisherPeer(**kwargs)  # type: ignore[arg-type]
        self.peers.append(peer)
        session, answer = await self.sfu.publish(room, await peer.offer())
        await peer.accept(answer)
        return peer, session

    async def live(self, room: str = "room", **kwargs: object) -> tuple[PublisherPeer, Publisher]:
        """A publisher whose media reached the SFU."""
        peer, session = await self.publish(room, **kwargs)
        await wait_until(
            lambda: (
                session.live
                and "video" in session.producers
                and session.producers["video"].keyframes > 0
            )
        )
        return peer, session

    async def view(self, room: str = "room", **kwargs: object) -> tuple[ViewerPeer, Subscriber]:
        peer = ViewerPeer(**kwargs)  # type: ignore[arg-type]
        self.peers.append(peer)
        session, answer = await self.sfu.subscribe(room, await peer.offer())
        await peer.accept(answer)
        return peer, session


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness() -> AsyncIterator[HarnessFactory]:
    harnesses: list[Harness] = []

    async def make(**settings: object) -> Harness:
        events: list[SfuEvent] = []
        sfu = Sfu(SfuSettings(ice=LOOPBACK_ICE, **settings), events.append)  # type: ignore[arg-type]
        harness = Harness(sfu, events)
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        for peer in harness.peers:
            await peer.close()
        await harness.sfu.close()


@pytest.fixture
async def harness(make_harness: HarnessFactory) -> Harness:
    return await make_harness()
