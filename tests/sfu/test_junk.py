"""Junk datagrams on the SFU's media ports never end a session."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct

import pytest

from peers.webrtc import wait_until

from .conftest import Harness

pytestmark = pytest.mark.timeout(30)


def junk_datagrams(rng: random.Random) -> list[bytes]:
    cookie = 0x2112A442
    datagrams = [b"", *(bytes([b]) for b in range(256))]
    for _ in range(300):
        datagrams.append(os.urandom(rng.randrange(2, 1400)))
    for message_type in (0x0001, 0x0101, 0x0111, 0x0011):  # STUN request/response/error
        header = struct.pack("!HHI", message_type, 8, cookie) + os.urandom(12)
        datagrams.append(header + struct.pack("!HH", 0x0006, 4) + b"abcd")  # USERNAME
        datagrams.append(header)  # length says 8, no body: truncated
    for content_type in (20, 21, 22, 23):  # DTLS records, epochs 0 and 1
        for epoch in (0, 1):
            body = os.urandom(rng.randrange(1, 200))
            record = struct.pack("!BHH6sH", content_type, 0xFEFD, epoch, os.urandom(6), len(body))
            datagrams += [record + body, record[:5]]
    datagrams.append(bytes([21, 0xFE, 0xFD, 0, 1]) + bytes(6) + b"\x00\x02\x01\x00")  # alert
    for payload_type in (96, 97, 101, 102, 111, 200, 201, 206, 205):  # RTP and RTCP headers
        header = struct.pack("!BBHII", 0x80, payload_type, rng.randrange(65536), 0, 0x1234)
        datagrams += [header + os.urandom(100), header[:7], header]
    return datagrams


async def test_junk_on_the_media_ports_is_ignored(harness: Harness) -> None:
    _, publisher = await harness.live()
    viewer, subscriber = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 20)
    ports = publisher.local_ports() + subscriber.local_ports()
    assert ports
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        rng = random.Random(7)
        datagrams = junk_datagrams(rng)
        for round_ in range(3):
            for port in ports:
                for datagram in datagrams:
                    sock.sendto(datagram, ("127.0.0.1", port))
            await asyncio.sleep(0.05 * round_)
    finally:
        sock.close()
    count = len(viewer.video_packets())
    await wait_until(lambda: len(viewer.video_packets()) > count + 30, within=10)
    assert not publisher.closed and not subscriber.closed
    assert publisher.pc.connectionState == "connected"
    assert subscriber.pc.connectionState == "connected"
    assert [e for e in harness.events if type(e).__name__.endswith("Gone")] == []
