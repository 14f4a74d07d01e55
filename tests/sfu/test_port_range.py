"""SHOPCAST_ICE_PORT_RANGE: every ICE socket of every SFU process binds in its own slice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from peers.ports import free_range
from peers.webrtc import wait_until
from sfu import (
    IceSettings,
    MediaPorts,
    NoMediaPortError,
    PortRange,
    PortSettings,
    Sfu,
    SfuSettings,
    serving_media_ports,
)

from .media_ports import Clients, candidate_ports, udp_ports

pytestmark = pytest.mark.timeout(60)

LOOPBACK_ICE = IceSettings(host_addresses=("127.0.0.1",))


@pytest.fixture
async def ranged() -> AsyncIterator[tuple[Clients, PortRange]]:
    """An SFU in this process whose ICE sockets bind in a free range of 3 ports."""
    ports = free_range(3)
    async with serving_media_ports(MediaPorts(ports, mux=False)):
        sfu = Sfu(SfuSettings(ice=LOOPBACK_ICE, ports=PortSettings(port_range=ports)))
        clients = Clients(sfu)
        try:
            yield clients, ports
        finally:
            await clients.close()
            await sfu.close()


def sfu_ports(clients: Clients, before: set[int]) -> set[int]:
    """UDP ports this process opened since ``before``, but the clients' own."""
    return udp_ports() - before - clients.ports()


async def test_n_sessions_bind_in_the_range_and_the_next_is_refused(
    ranged: tuple[Clients, PortRange],
) -> None:
    clients, ports = ranged
    sfu = clients.sfu
    before = udp_ports()
    viewer_peers = []
    _, publisher, answer = await clients.publish()
    await wait_until(lambda: publisher.live)
    assert candidate_ports(answer) == publisher.local_ports()
    for _ in range(2):
        peer, viewer, answer = await clients.view()
        viewer_peers.append(peer)
        assert candidate_ports(answer) == viewer.local_ports()  # type: ignore[union-attr]
    assert sfu_ports(clients, before) == set(range(ports.first, ports.last + 1))
    for peer in viewer_peers:
        await wait_until(lambda peer=peer: len(peer.video_packets()) > 10)  # type: ignore[misc]

    opened = sfu_ports(clients, before)
    error = await clients.refused_view()
    assert "in use" in str(error)
    assert sfu.session_count() == 3
    assert sfu_ports(clients, before) == opened  # nothing left behind, nothing outside
    room = sfu.get_room("room")
    assert room is not None and len(room.subscribers) == 2

    with pytest.raises(NoMediaPortError):
        await clients.publish("other")
    assert sfu.get_room("other") is None and sfu.session_count() == 3


async def test_closing_a_session_frees_its_port(ranged: tuple[Clients, PortRange]) -> None:
    clients, ports = ranged
    sfu = clients.sfu
    await clients.publish()
    _, first, _ = await clients.view()
    await clients.view()
    await clients.refused_view()
    freed = first.local_ports()  # type: ignore[union-attr]
    # Closed by the server, its peer lingers and keeps sending to the port, which is reused
    # at once: those datagrams must not reach the next session there (aioice would take them).
    await first.close()
    assert sfu.session_count() == 2
    assert not set(freed) & udp_ports()
    peer, again, answer = await clients.view()
    assert candidate_ports(answer)[0] in ports
    assert again.local_ports() == freed  # type: ignore[union-attr]
    await wait_until(lambda: len(peer.video_packets()) > 10)
    assert sfu.session_count() == 3


async def test_workers_bind_in_their_own_slice() -> None:
    """Two processes, four ports: two each; a worker's refusal is the same typed error."""
    ports = free_range(4)
    settings = PortSettings(port_range=ports, processes=2)
    main, worker = settings.slice(0), settings.slice(1)
    assert main is not None and worker is not None
    async with serving_media_ports(MediaPorts.for_process(settings, 0)):
        sfu = Sfu(SfuSettings(ice=LOOPBACK_ICE, ports=settings))
        clients = Clients(sfu)
        try:
            await sfu.start_workers(1)
            _, publisher, _ = await clients.publish()
            await wait_until(lambda: publisher.live)
            assert publisher.local_ports()[0] in main
            seen: dict[str, list[int]] = {"main": [], "worker": []}
            peers = []
            for _ in range(3):  # worker, main, worker: placement alternates
                peer, _, answer = await clients.view()
                peers.append(peer)
                (port,) = candidate_ports(answer)
                seen["main" if port in main else "worker"].append(port)
                assert port in main or port in worker
            assert len(seen["worker"]) == 2 and len(set(seen["worker"])) == 2
            assert len(seen["main"]) == 1
            for pid in sfu.worker_pids():
                assert set(seen["worker"]) <= udp_ports(pid)
            for peer in peers:
                await wait_until(lambda peer=peer: len(peer.video_packets()) > 10)  # type: ignore[misc]
            await clients.refused_view()  # the main process, now full too
            assert sfu.session_count() == 4
        finally:
            await clients.close()
            await sfu.close()
