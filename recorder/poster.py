"""The poster thumbnail: one keyframe decoded and encoded as JPEG (in the muxer)."""

from __future__ import annotations

import io
from fractions import Fraction

import av
from av.packet import Packet
from av.video.frame import VideoFrame

_MAX_WIDTH = 1280


def video_decoder(codec: str) -> av.VideoCodecContext:
    """A decoder for an RTP video encoding name ("H264" or "VP8")."""
    if codec.upper() == "H264":
        return av.CodecContext.create("h264", "r")
    return av.CodecContext.create("vp8", "r")


def decode_keyframe(codec: str, keyframe: bytes) -> VideoFrame | None:
    """Decode one H.264 (Annex-B, with SPS/PPS) or VP8 keyframe; None if undecodable."""
    decoder = video_decoder(codec)
    try:
        frames = list(decoder.decode(Packet(keyframe))) + list(decoder.decode(None))
    except av.FFmpegError:
        return None
    pictures = [frame for frame in frames if isinstance(frame, VideoFrame)]
    return pictures[0] if pictures else None


def probe_size(keyframe: bytes) -> tuple[int, int] | None:
    """Width and height of an H.264 keyframe (once per recording, for the init segment)."""
    picture = decode_keyframe("h264", keyframe)
    return None if picture is None else (picture.width, picture.height)


def poster_from_mp4(data: bytes) -> bytes | None:
    """JPEG of the first video frame of an MP4 held in memory (init + one segment)."""
    try:
        with av.open(io.BytesIO(data), "r", format="mp4") as container:
            if not container.streams.video:
                return None
            for frame in container.decode(video=0):
                return encode_jpeg(frame)
    except av.FFmpegError:
        return None
    return None


def poster_jpeg(codec: str, keyframe: bytes) -> bytes | None:
    """JPEG bytes of a keyframe's picture; None if it does not decode."""
    picture = decode_keyframe(codec, keyframe)
    return None if picture is None else encode_jpeg(picture)


def encode_jpeg(frame: VideoFrame) -> bytes:
    width, height = frame.width, frame.height
    if width > _MAX_WIDTH:
        width, height = _MAX_WIDTH, round(height * _MAX_WIDTH / width)
    width, height = width - width % 2, height - height % 2
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    picture.pts = 0
    packets = list(encoder.encode(picture)) + list(encoder.encode(None))
    return b"".join(bytes(packet) for packet in packets)
