"""Transcoding in the muxer: Opus -> AAC (HLS needs AAC) and VP8 -> H.264."""

from __future__ import annotations

from fractions import Fraction

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.packet import Packet
from av.stream import Stream
from av.video.frame import PictureType, VideoFrame

from .h264 import NAL_IDR, START_CODE
from .poster import video_decoder

AUDIO_RATE = 48000
AAC_FRAME = 1024
_AUDIO_TIME_BASE = Fraction(1, AUDIO_RATE)
# Gaps longer than this are not filled with silence; the audio track restarts there.
_MAX_FILL = 5 * AUDIO_RATE


class AudioTranscoder:
    """Decodes Opus packets and re-encodes them as AAC, keeping them on the timeline.

    AAC frames are 1024 samples, Opus frames 20 ms (960): a FIFO re-chunks them. Holes
    (loss, DTX) are filled with silence so audio stays locked to its RTP timestamps.
    """

    def __init__(self, encoder: AudioCodecContext) -> None:
        self._encoder = encoder
        self._layout = encoder.layout.name
        self._decoder = av.CodecContext.create("opus", "r")
        self._decoder.sample_rate = AUDIO_RATE
        self._decoder.layout = self._layout
        self._fifo = av.AudioFifo()
        self._next_in: int | None = None  # timeline sample the FIFO's end corresponds to
        self._next_out = 0

    def add(self, data: bytes, pts: int) -> list[Packet[Stream]]:
        """Transcode one Opus packet whose first sample is at `pts` (1/48000 s)."""
        packet = Packet(data)
        packet.pts = pts
        packet.time_base = _AUDIO_TIME_BASE
        try:
            frames = self._decoder.decode(packet)
        except av.FFmpegError:
            return []  # one corrupt packet: skip it, the next one decodes
        out: list[Packet[Stream]] = []
        for frame in frames:
            assert isinstance(frame, AudioFrame)
            self._write(frame, pts)
            pts += frame.samples
            out.extend(self._encode_ready())
        return out

    def flush(self) -> list[Packet[Stream]]:
        out = self._encode_ready()
        rest = self._fifo.read(0, partial=True) if self._fifo.samples else None
        if rest is not None:
            rest.pts, rest.time_base = self._next_out, _AUDIO_TIME_BASE
            out.extend(self._encoder.encode(rest))
        out.extend(self._encoder.encode(None))
        return out

    def _write(self, frame: AudioFrame, pts: int) -> None:
        if self._next_in is None:
            self._next_in = self._next_out = pts
        gap = pts - self._next_in
        if gap < -frame.samples:
            return  # overlaps what was already written (timestamps went back): drop
        if 0 < gap <= _MAX_FILL and gap >= frame.samples // 2:
            self._fifo.write(self._silence(gap))
            self._next_in += gap
        elif gap > _MAX_FILL:
            self._restart(pts)
        frame.pts = None  # the FIFO re-times frames itself; pts are kept in _next_in
        self._fifo.write(frame)
        self._next_in += frame.samples

    def _restart(self, pts: int) -> None:
        # A long hole: the few samples still queued are dropped rather than stretched over it.
        self._fifo = av.AudioFifo()
        self._next_in = self._next_out = pts

    def _encode_ready(self) -> list[Packet[Stream]]:
        out: list[Packet[Stream]] = []
        while self._fifo.samples >= AAC_FRAME:
            chunk = self._fifo.read(AAC_FRAME)
            assert chunk is not None
            chunk.pts, chunk.time_base = self._next_out, _AUDIO_TIME_BASE
            self._next_out += AAC_FRAME
            out.extend(self._encoder.encode(chunk))
        return out

    def _silence(self, samples: int) -> AudioFrame:
        frame = AudioFrame(format="fltp", layout=self._layout, samples=samples)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = AUDIO_RATE
        return frame


class VideoTranscoder:
    """Decodes VP8 and encodes H.264 (libx264, ultrafast, zerolatency), once per stream.

    Output size is fixed by the first keyframe; later frames are scaled to it, so the
    init segment stays valid when the publisher changes resolution. Keyframes are forced
    where the segmenter wants segment boundaries (`force_keyframe`).
    """

    def __init__(self, codec: str, bitrate: int = 1_500_000) -> None:
        self._decoder = video_decoder(codec)
        self._bitrate = bitrate
        self._encoder: av.VideoCodecContext | None = None
        self.size: tuple[int, int] | None = None

    def add(self, data: bytes, pts: int, force_keyframe: bool) -> list[tuple[bytes, int, bool]]:
        """Transcode one frame; return H.264 Annex-B access units as (data, pts, keyframe)."""
        packet = Packet(data)
        packet.pts = pts
        packet.time_base = Fraction(1, 90000)
        frames = self._decoder.decode(packet)
        out: list[tuple[bytes, int, bool]] = []
        for frame in frames:
            assert isinstance(frame, VideoFrame)
            out.extend(self._encode(frame, pts, force_keyframe))
        return out

    def flush(self) -> list[tuple[bytes, int, bool]]:
        if self._encoder is None:
            return []
        return [self._unpack(packet) for packet in self._encoder.encode(None)]

    def _encode(self, frame: VideoFrame, pts: int, force: bool) -> list[tuple[bytes, int, bool]]:
        encoder = self._encoder or self._open(frame.width, frame.height)
        assert self.size is not None
        if (frame.width, frame.height) != self.size or frame.format.name != "yuv420p":
            frame = frame.reformat(width=self.size[0], height=self.size[1], format="yuv420p")
        frame.pts, frame.time_base = pts, Fraction(1, 90000)
        frame.pict_type = PictureType.I if force else PictureType.NONE
        return [self._unpack(packet) for packet in encoder.encode(frame)]

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        encoder = av.CodecContext.create("libx264", "w")
        assert isinstance(encoder, av.VideoCodecContext)
        # Even dimensions: 4:2:0 chroma needs them.
        self.size = (width - width % 2, height - height % 2)
        encoder.width, encoder.height = self.size
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = Fraction(1, 90000)
        encoder.framerate = Fraction(30, 1)
        encoder.bit_rate = self._bitrate
        encoder.gop_size = 600  # keyframes come from force_keyframe, not from a fixed GOP
        encoder.max_b_frames = 0
        encoder.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": "forced-idr=1:repeat-headers=1",
        }
        self._encoder = encoder
        return encoder

    @staticmethod
    def _unpack(packet: Packet[Stream]) -> tuple[bytes, int, bool]:
        data = bytes(packet)
        keyframe = packet.is_keyframe or _has_idr(data)
        return data, int(packet.pts or 0), keyframe


def _has_idr(data: bytes) -> bool:
    return any(nal and nal[0] & 0x1F == NAL_IDR for nal in data.split(START_CODE))
