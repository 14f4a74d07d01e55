"""SHOPCAST_ICE_UDP_MUX: one UDP port per SFU process, shared by all its sessions."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aioice import stun

from peers.ports import free_range
from peers.webrtc import ViewerPeer, wait_until
from sfu import (
    IceSettings,
    MediaPorts,
    PortRange,
    PortSettings,
    Publisher,
    Sfu,
    SfuEvent,
    SfuSettings,
    serving_media_ports,
)
from sfu.aiortc_hooks import dtls_transports
from sfu.mux import UdpMux

from .media_ports import Clients, Viewer, candidate_ports, udp_ports
from .test_junk import junk_datagrams

pytestmark = pytest.mark.timeout(60)

LOOPBACK_ICE = IceSettings(host_addresses=("127.0.0.1",))


@dataclass
class Muxed:
    clients: Clients
    ports: MediaPorts
    port: int
    events: list[SfuEvent] = field(default_factory=list)

    @property
    def mux(self) -> UdpMux:
        (mux,) = self.ports.muxes()
        return mux


@pytest.fixture
async def muxed() -> AsyncIterator[Muxed]:
    """An SFU in this process whose sessions all share one port of a 1-port range."""
    ports = free_range(1)
    events: list[SfuEvent] = []
    media_ports = MediaPorts(ports, mux=True)
    async with serving_media_ports(media_ports):
        settings = SfuSettings(ice=LOOPBACK_ICE, ports=PortSettings(port_range=ports, udp_mux=True))
        sfu = Sfu(settings, events.append)
        clients = Clients(sfu)
        try:
            yield Muxed(clients, media_ports, ports.first, events)
        finally:
            await clients.close()
            await sfu.close()


async def test_two_rooms_and_their_viewers_share_one_port(muxed: Muxed) -> None:
    clients, port = muxed.clients, muxed.port
    before = udp_ports()
    publishers: list[Publisher] = []
    for room in ("a", "b"):
        _, publisher, answer = await clients.publish(room)
        assert candidate_ports(answer) == [port]
        publishers.append(publisher)
    for publisher in publishers:
        await wait_until(lambda publisher=publisher: publisher.live)  # type: ignore[misc]
    viewers: list[tuple[ViewerPeer, Viewer]] = []
    for room in ("a", "a", "b", "b"):
        peer, session, answer = await clients.view(room)
        assert candidate_ports(answer) == [port]
        viewers.append((peer, session))
    assert udp_ports() - before - clients.ports() == {port}
    assert muxed.mux.sessions() == 6
    for peer, _ in viewers:
        await wait_until(lambda peer=peer: len(peer.video_packets()) > 10)  # type: ignore[misc]
    counts = [len(peer.video_packets()) for peer, _ in viewers]
    await wait_until(
        lambda: all(
            len(p.video_packets()) > c + 10 for (p, _), c in zip(viewers, counts, strict=True)
        )
    )

    routed = muxed.mux.addresses()
    _, session = viewers[0]
    await session.close()
    assert muxed.mux.sessions() == 5 and muxed.mux.addresses() == routed - 1
    await clients.sfu.close()
    assert muxed.mux.sessions() == 0 and muxed.mux.addresses() == 0
    assert udp_ports() - before - clients.ports() == {port}  # the mux itself stays open


def forged_binding_request(ufrag: str) -> bytes:
    """A binding request naming a live session's ufrag, with a wrong MESSAGE-INTEGRITY."""
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{ufrag}:nobody"
    request.attributes["PRIORITY"] = 1
    request.add_message_integrity(b"not the password")
    request.add_fingerprint()
    return bytes(request)


async def test_junk_from_unknown_senders_is_dropped(muxed: Muxed) -> None:
    clients, port = muxed.clients, muxed.port
    _, publisher, _ = await clients.publish()
    await wait_until(lambda: publisher.live)
    viewer, subscriber, _ = await clients.view()
    await wait_until(lambda: len(viewer.video_packets()) > 20)
    routed, dropped = muxed.mux.addresses(), muxed.mux.dropped
    ufrag = dtls_transports(publisher.pc)[0].transport._connection.local_username
    datagrams = [*junk_datagrams(random.Random(7)), forged_binding_request(ufrag)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        for round_ in range(3):
            for datagram in datagrams:
                sock.sendto(datagram, ("127.0.0.1", port))
            await asyncio.sleep(0.05 * round_)
        await wait_until(lambda: muxed.mux.dropped >= dropped + 3 * len(datagrams))
    finally:
        sock.close()
    assert muxed.mux.addresses() == routed  # no junk claimed an address
    count = len(viewer.video_packets())
    await wait_until(lambda: len(viewer.video_packets()) > count + 30, within=10)
    assert not publisher.closed and not subscriber.closed
    assert publisher.pc.connectionState == "connected"
    assert [e for e in muxed.events if type(e).__name__.endswith("Gone")] == []


async def test_a_stun_response_claims_the_address_its_request_went_to(muxed: Muxed) -> None:
    """The SFU's own connectivity checks: their responses come from unclaimed addresses."""
    clients = muxed.clients
    _, publisher, _ = await clients.publish()
    await wait_until(lambda: publisher.live)
    mux = muxed.mux
    (transport,) = [t for routes in mux._by_ufrag.values() for t in routes]
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    try:
        address = peer.getsockname()
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        transport.sendto(bytes(request), address)
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(peer, 2048), 5)
        assert struct.unpack_from("!H", data)[0] == 0x0001
        stray = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE)  # nobody asked
        peer.sendto(bytes(stray), ("127.0.0.1", muxed.port))
        await wait_until(lambda: mux.dropped >= 1)
        assert address not in mux._routes
        response = stun.Message(
            stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=request.transaction_id
        )
        peer.sendto(bytes(response), ("127.0.0.1", muxed.port))
        await wait_until(lambda: address in mux._routes)
        assert mux._owners[address] is transport
    finally:
        peer.close()


async def test_each_worker_shares_its_own_port() -> None:
    ports = free_range(2)
    settings = PortSettings(port_range=ports, processes=2, udp_mux=True)
    async with serving_media_ports(MediaPorts.for_process(settings, 0)):
        sfu = Sfu(SfuSettings(ice=LOOPBACK_ICE, ports=settings))
        clients = Clients(sfu)
        try:
            await sfu.start_workers(1)
            _, publisher, answer = await clients.publish()
            assert candidate_ports(answer) == [ports.first]
            await wait_until(lambda: publisher.live)
            seen: list[int] = []
            peers = []
            for _ in range(4):  # placement alternates: worker, main, worker, main
                peer, _, answer = await clients.view()
                peers.append(peer)
                seen += candidate_ports(answer)
            assert sorted(seen) == [ports.first] * 2 + [ports.last] * 2
            (pid,) = sfu.worker_pids()
            assert ports.last in udp_ports(pid) and ports.first not in udp_ports(pid)
            for peer in peers:
                await wait_until(lambda peer=peer: len(peer.video_packets()) > 10)  # type: ignore[misc]
            assert sfu.session_count() == 5
        finally:
            await clients.close()
            await sfu.close()


def test_a_mux_port_is_one_port_of_the_slice() -> None:
    described = str(MediaPorts(PortRange(50000, 50009), mux=True))
    assert described == "one shared UDP port of 50000-50009"
