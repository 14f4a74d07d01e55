"""fMP4 (CMAF-style) fragments from PyAV's mp4 muxer, cut in memory at moof boundaries."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
from av.audio.codeccontext import AudioCodecContext
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

from .boxes import is_sync, iter_boxes, read_fragment, read_init, shift_decode_times

VIDEO_TIME_BASE = Fraction(1, 90000)
_MOVFLAGS = "empty_moov+default_base_moof+frag_keyframe+skip_trailer"


@dataclass(frozen=True, slots=True)
class Fragment:
    """One moof+mdat pair: an LL-HLS part. Times in seconds on the recording timeline."""

    data: bytes
    start: float
    duration: float
    independent: bool


class _Sink:
    """The file object PyAV writes into: an append-only buffer (not seekable on purpose)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)


class Fragmenter:
    """Muxes H.264 and AAC packets into an init segment and a stream of fragments.

    States: open (streams declared) -> writing (header out, after the first packet) ->
    closed. The muxer starts a fragment at every video keyframe and whenever a fragment
    reaches `fragment_duration`; each complete moof+mdat pair read back from the buffer
    is one part. Packets are passed through untouched: H.264 is never decoded here.
    """

    def __init__(
        self,
        *,
        video_size: tuple[int, int] | None,
        audio_channels: int | None,
        fragment_duration: float,
        audio_bitrate: int = 64000,
        keep_times: bool = False,
    ) -> None:
        self._sink = _Sink()
        options = {
            "movflags": _MOVFLAGS,
            "frag_duration": str(int(fragment_duration * 1_000_000)),
            # Bound how long one silent track can hold the other in the interleaver.
            "max_interleave_delta": "500000",
        }
        self._container: OutputContainer = av.open(
            self._sink, "w", format="mp4", container_options=options
        )
        self._video: Stream | None = None
        self.audio_encoder: AudioCodecContext | None = None
        self._audio: Stream | None = None
        if video_size is not None:
            width, height = video_size
            self._video = self._container.add_mux_stream("h264", width=width, height=height)
            self._video.time_base = VIDEO_TIME_BASE
        if audio_channels is not None:
            layout = "mono" if audio_channels == 1 else "stereo"
            stream = self._container.add_stream("aac", rate=48000, layout=layout)
            stream.codec_context.options = {"aac_coder": "fast"}
            stream.codec_context.bit_rate = audio_bitrate * audio_channels
            stream.codec_context.time_base = Fraction(1, 48000)
            self._audio, self.audio_encoder = stream, stream.codec_context
        self.init: bytes | None = None
        self._tracks: dict[int, tuple[int, bool]] = {}  # track id -> (timescale, is video)
        self._primary = 0
        self._last_video_dts = -1
        self.closed = False
        # The mp4 muxer starts every track at decode time zero. With ``keep_times`` each track
        # keeps the times it was given: its first packet's (seconds, by track id) is noted, and
        # each fragment's decode times are moved by what the muxer took off.
        self._keep_times = keep_times
        self._first: dict[int, float] = {}
        self._shifts: dict[int, int] = {}

    def add_video(self, data: bytes, pts: int, keyframe: bool, duration: int) -> list[Fragment]:
        """Mux one Annex-B access unit (pts in 1/90000 s); return the fragments it completed."""
        if self._video is None or pts <= self._last_video_dts:
            return []  # the muxer requires strictly increasing dts
        self._last_video_dts = pts
        packet = Packet(data)
        packet.pts = packet.dts = pts
        packet.duration = duration
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = keyframe
        packet.stream = self._video
        self._first.setdefault(self._video.index + 1, pts / VIDEO_TIME_BASE.denominator)
        self._container.mux_one(packet)
        return self._collect()

    def add_audio(self, packets: list[Packet[Stream]]) -> list[Fragment]:
        """Mux AAC packets from `audio_encoder`; return the fragments they completed."""
        if self._audio is None:
            return []
        for packet in packets:
            if packet.dts is None or packet.dts < 0:
                continue  # encoder priming: no media of ours
            packet.stream = self._audio
            if packet.time_base is not None:
                self._first.setdefault(self._audio.index + 1, float(packet.dts * packet.time_base))
            self._container.mux_one(packet)
        return self._collect()

    def close(self) -> list[Fragment]:
        """Flush the last fragment and close the muxer (idempotent)."""
        if self.closed:
            return []
        self.closed = True
        self._container.close()
        return self._collect()

    def _collect(self) -> list[Fragment]:
        buffer = self._sink.buffer
        done: list[Fragment] = []
        consumed = 0
        pending_moof = None
        for box in iter_boxes(buffer):
            if box.type == "moov":
                self._read_init(bytes(buffer[: box.end]))
                consumed = box.end
            elif box.type == "moof":
                pending_moof = box
            elif box.type == "mdat" and pending_moof is not None:
                data = bytes(buffer[pending_moof.start : box.end])
                done.append(self._fragment(data))
                consumed, pending_moof = box.end, None
        if consumed:
            del buffer[:consumed]
        return done

    def _read_init(self, data: bytes) -> None:
        self.init = data
        tracks = read_init(data)
        self._defaults = tracks
        for track in tracks.values():
            self._tracks[track.track_id] = (track.timescale, track.handler == "vide")
        video = [tid for tid, (_, is_video) in self._tracks.items() if is_video]
        self._primary = video[0] if video else min(self._tracks, default=0)

    def _fragment(self, data: bytes) -> Fragment:
        moof = next(iter_boxes(data))
        if self._keep_times:
            patched = bytearray(data)
            shift_decode_times(patched, moof, self._shift)
            data = bytes(patched)
        runs = read_fragment(data, moof, self._defaults).runs
        run = runs.get(self._primary) or next(iter(runs.values()))
        timescale, is_video = self._tracks.get(run.track_id, (1, False))
        has_video = any(video for _, video in self._tracks.values())
        independent = is_sync(run.first_flags) if is_video else not has_video
        return Fragment(data, run.base_time / timescale, run.duration / timescale, independent)

    def _shift(self, track_id: int, base: int) -> int:
        """Units to add to ``track_id``'s decode times: fixed at its first fragment, as its
        first packet's time less the decode time the muxer gave it."""
        shift = self._shifts.get(track_id)
        if shift is None:
            timescale = self._tracks.get(track_id, (1, False))[0]
            first = self._first.get(track_id, 0.0)
            shift = self._shifts[track_id] = round(first * timescale) - base
        return shift
