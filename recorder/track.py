"""What the recorder is told about each inbound track before the first packet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MediaKind = Literal["audio", "video"]

# Codecs the recorder accepts, by RTP encoding name (case-insensitive in SDP).
VIDEO_CODECS = frozenset({"H264", "VP8"})
AUDIO_CODECS = frozenset({"OPUS"})


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """One negotiated inbound track: kind, RTP encoding name, payload type and clock rate."""

    kind: MediaKind
    codec_name: str
    payload_type: int
    clock_rate: int

    def __post_init__(self) -> None:
        allowed = VIDEO_CODECS if self.kind == "video" else AUDIO_CODECS
        if self.codec_name.upper() not in allowed:
            raise ValueError(f"unsupported {self.kind} codec {self.codec_name!r}")
        if self.clock_rate <= 0:
            raise ValueError("clock_rate must be positive")

    @property
    def codec(self) -> str:
        """The encoding name in upper case ("H264", "VP8", "OPUS")."""
        return self.codec_name.upper()
