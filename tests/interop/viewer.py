"""A WHEP viewer that decodes what it receives, to prove an independent publisher's video plays.

``peers.webrtc.ViewerPeer`` never decodes (its receivers' decoder threads are stopped, to
hold many viewers cheaply); this one keeps aiortc's whole receive path: jitter buffer, NACK,
keyframe requests and the VP8/H.264 decoder, as a player would.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiortc import MediaStreamTrack, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from peers.webrtc import new_pc
from sfu.candidates import gathering_on


class DecodingViewer:
    """Counts the video frames it decodes and keeps the size of the last one."""

    def __init__(self) -> None:
        self.pc = new_pc()
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._readers: list[asyncio.Task[None]] = []
        for kind in ("audio", "video"):
            self.pc.addTransceiver(kind, direction="recvonly")
        self.pc.on("track", self._read)

    async def offer(self, address: str) -> str:
        with gathering_on((address,)):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp: str = self.pc.localDescription.sdp
        return sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    def _read(self, track: MediaStreamTrack) -> None:
        # Audio is read too: aiortc queues decoded frames until someone takes them.
        self._readers.append(asyncio.ensure_future(self._frames_of(track)))

    async def _frames_of(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self.frames += 1
                    self.size = (frame.width, frame.height)

    async def close(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self.pc.close()
