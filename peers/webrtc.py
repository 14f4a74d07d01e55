"""Client-side peers for tests and benchmarks: a synthetic publisher and recording viewers.

They are ordinary aiortc peer connections on loopback. Viewers never decode: their
receivers' decoder threads are stopped (the same hook the SFU uses) and their decrypted RTP
is tapped to count and check packets.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import av
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from av.frame import Frame

from sfu.aiortc_hooks import disable_decoding, dtls_transports, tap_rtp
from sfu.candidates import gathering_on
from sfu.rtp import header_length

LOOPBACK = ("127.0.0.1",)
_HEADER = struct.Struct("!BBHII")


class SyntheticVideoTrack(VideoStreamTrack):
    """30 fps frames of a moving gradient (cycled from a few pre-rendered frames)."""

    def __init__(self, width: int = 320, height: int = 240, distinct: int = 30) -> None:
        super().__init__()
        self._frames = [self._render(width, height, i) for i in range(distinct)]
        self._cycle = itertools.cycle(self._frames)

    @staticmethod
    def _render(width: int, height: int, index: int) -> av.VideoFrame:
        frame = av.VideoFrame(width, height, "yuv420p")
        # Rows are padded to the plane's line size (any width, e.g. a portrait 360x640).
        luma, u, v = frame.planes
        row = bytes((x + index * 8) & 0xFF for x in range(luma.line_size))
        luma.update(row * height)
        chroma = bytes([(index * 5) & 0xFF]) * (u.line_size * (height // 2))
        u.update(chroma)
        v.update(chroma)
        return frame

    async def recv(self) -> Frame:
        pts, time_base = await self.next_timestamp()
        template = next(self._cycle)
        frame = av.VideoFrame(template.width, template.height, "yuv420p")
        for target, source in zip(frame.planes, template.planes, strict=True):
            target.update(bytes(source))
        frame.pts = pts
        frame.time_base = time_base
        return frame


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class PublisherPeer:
    """A WHIP client: sends synthetic H.264 (aiortc encodes it) and Opus silence."""

    def __init__(
        self, *, video: bool = True, audio: bool = True, size: tuple[int, int] = (320, 240)
    ):
        self.pc = new_pc()
        self.video_sender = self.pc.addTrack(SyntheticVideoTrack(*size)) if video else None
        self.audio_sender = self.pc.addTrack(AudioStreamTrack()) if audio else None
        for transceiver in self.pc.getTransceivers():
            transceiver.direction = "sendonly"
        self.keyframe_requests = 0
        if self.video_sender is not None:
            original = self.video_sender._send_keyframe

            def counted() -> None:
                self.keyframe_requests += 1
                original()

            self.video_sender._send_keyframe = counted  # type: ignore[method-assign]

    async def offer(self) -> str:
        with gathering_on(LOOPBACK):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp: str = self.pc.localDescription.sdp
        return sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()


@dataclass
class Received:
    """One RTP packet as a viewer received it."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool
    size: int
    arrival: float
    payload: bytes


@dataclass
class ViewerPeer:
    """A WHEP client that records (or only counts) the RTP it receives, without decoding."""

    record: bool = True
    want_video: bool = True
    want_audio: bool = True
    packets: list[Received] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)
    seqs: dict[int, set[int]] = field(default_factory=dict)
    first_packet_at: float | None = None
    first_video_at: float | None = None
    started_at: float = 0.0
    video_pts: set[int] = field(default_factory=set)
    on_packet: Callable[[bytes], None] | None = None

    def __post_init__(self) -> None:
        self.pc = new_pc()
        if self.want_audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        if self.want_video:
            self.pc.addTransceiver("video", direction="recvonly")
        for transceiver in self.pc.getTransceivers():
            disable_decoding(transceiver.receiver)

    async def offer(self) -> str:
        self.started_at = time.monotonic()
        with gathering_on(LOOPBACK):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp: str = self.pc.localDescription.sdp
        return sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        for line in answer.splitlines():
            if line.startswith("a=rtpmap:") and ("H264/90000" in line or "VP8/90000" in line):
                self.video_pts.add(int(line.split(":")[1].split()[0]))
        for dtls in dtls_transports(self.pc):
            tap_rtp(dtls, self._on_rtp)

    def _on_rtp(self, data: bytes) -> None:
        if self.on_packet is not None:
            self.on_packet(data)
        _b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        now = time.monotonic()
        if self.first_packet_at is None:
            self.first_packet_at = now
        pt = b1 & 0x7F
        if self.first_video_at is None and pt in self.video_pts:
            self.first_video_at = now
        self.counts[pt] = self.counts.get(pt, 0) + 1
        self.seqs.setdefault(ssrc, set()).add(seq)
        if self.record:
            offset = header_length(data)
            self.packets.append(
                Received(pt, seq, ts, ssrc, bool(b1 & 0x80), len(data), now, data[offset:])
            )

    def video_packets(self) -> list[Received]:
        return [p for p in self.packets if p.payload_type in self.video_pts]

    def audio_packets(self) -> list[Received]:
        return [p for p in self.packets if p.payload_type not in self.video_pts]

    async def close(self) -> None:
        await self.pc.close()


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``predicate`` every 20 ms until it holds; TimeoutError after ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


__all__ = ["LOOPBACK", "PublisherPeer", "Received", "ViewerPeer", "wait_until"]
