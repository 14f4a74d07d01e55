"""NACKed packets are retransmitted from the viewer's history, as RTX."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from peers.webrtc import wait_until
from sfu.aiortc_hooks import dtls_transports

from .conftest import Harness

pytestmark = pytest.mark.timeout(30)


async def test_lost_packets_are_retransmitted(harness: Harness) -> None:
    await harness.live()
    viewer, subscriber = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 20)
    video_pt = next(iter(viewer.video_pts))
    start = viewer.video_packets()[-1].sequence_number
    to_drop = {(start + 5) & 0xFFFF, (start + 7) & 0xFFFF, (start + 9) & 0xFFFF}
    dropped: set[int] = set()
    dtls = dtls_transports(viewer.pc)[0]
    original: Callable[..., Awaitable[None]] = dtls._handle_rtp_data

    async def lossy(data: bytes, arrival_time_ms: int) -> None:
        seq = data[2] << 8 | data[3]
        if data[1] & 0x7F == video_pt and seq in to_drop and seq not in dropped:
            dropped.add(seq)  # lose the first copy only
            return
        await original(data, arrival_time_ms=arrival_time_ms)

    dtls._handle_rtp_data = lossy
    consumer = subscriber.consumers["video"]

    def repaired() -> set[int]:
        return {
            p.payload[0] << 8 | p.payload[1]
            for p in viewer.packets
            if p.payload_type != video_pt and p.ssrc == consumer.sender._rtx_ssrc
        }

    await wait_until(lambda: to_drop <= repaired(), within=10)
    assert dropped == to_drop
    assert consumer.nacks >= 3
    assert consumer.retransmitted >= 3
