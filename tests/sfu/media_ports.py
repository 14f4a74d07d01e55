"""Helpers for tests of the SFU's ICE ports: free ranges, socket inventories, client peers.

The tests' publishers and viewers live in the SFU's process: they gather under
:func:`sfu.ephemeral_ports`, so only the SFU's own sessions take ports of the range.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from peers.webrtc import PublisherPeer, ViewerPeer
from sfu import NoMediaPortError, Publisher, Sfu, ephemeral_ports
from sfu.aiortc_hooks import dtls_transports, local_ports
from sfu.pool import RemoteSubscriber
from sfu.subscriber import Subscriber


def udp_ports(pid: int | str = "self") -> set[int]:
    """Local ports of the UDP sockets process ``pid`` holds (its fds, in /proc/net/udp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def candidate_ports(sdp: str) -> list[int]:
    """The distinct UDP ports of the ``a=candidate`` lines of an SDP (BUNDLE repeats them)."""
    lines = sdp.splitlines()
    return sorted({int(line.split()[5]) for line in lines if line.startswith("a=candidate:")})


Viewer = Subscriber | RemoteSubscriber


@dataclass
class Clients:
    """The test's own peers of an SFU, on random ports (closed at teardown)."""

    sfu: Sfu
    peers: list[PublisherPeer | ViewerPeer] = field(default_factory=list)

    async def publish(self, room: str = "room") -> tuple[PublisherPeer, Publisher, str]:
        peer = PublisherPeer()
        self.peers.append(peer)
        with ephemeral_ports():
            offer = await peer.offer()
        session, answer = await self.sfu.publish(room, offer)
        await peer.accept(answer)
        return peer, session, answer

    async def view(self, room: str = "room") -> tuple[ViewerPeer, Viewer, str]:
        peer = ViewerPeer()
        self.peers.append(peer)
        with ephemeral_ports():
            offer = await peer.offer()
        session, answer = await self.sfu.subscribe(room, offer)
        await peer.accept(answer)
        return peer, session, answer

    async def refused_view(self, room: str = "room") -> NoMediaPortError:
        """A viewer's offer that the SFU refuses for want of a port (the error)."""
        peer = ViewerPeer()
        self.peers.append(peer)
        with ephemeral_ports():
            offer = await peer.offer()
        try:
            await self.sfu.subscribe(room, offer)
        except NoMediaPortError as exc:
            return exc
        raise AssertionError("the viewer got a port")

    def ports(self) -> set[int]:
        """The clients' own local ports."""
        transports = [dtls for peer in self.peers for dtls in dtls_transports(peer.pc)]
        return {port for dtls in transports for port in local_ports(dtls)}

    async def close(self) -> None:
        for peer in self.peers:
            await peer.close()
