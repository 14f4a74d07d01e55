"""The recorder: publisher RTP in, live LL-HLS and a finished VOD recording out."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from .config import RecorderConfig
from .cue import Cue
from .events import (
    KeyframeWanted,
    MuxerEvent,
    PartWritten,
    SegmentWritten,
    Started,
    Stopped,
    Truncated,
)
from .files import CUES, INIT, LIVE_PLAYLIST, POSTER, VOD_PLAYLIST, RecordingFiles
from .frame import TimedFrame
from .keyframes import KeyframePolicy
from .muxer import Muxer
from .playlist import Playlist, Skip
from .result import RecordingResult
from .tally import RecordingTally
from .timeline import Origin
from .track import TrackInfo
from .track_ingest import TrackIngest

log = logging.getLogger(__name__)

PART_TIMES_KEPT = 3600  # 20 minutes of 1/3 s parts
_SERVABLE = re.compile(r"^(init\.mp4|segment-\d{5}\.m4s|part-(\d{6})\.m4s|poster\.jpg)$")


class RecorderState(enum.Enum):
    RECORDING = "recording"
    FINISHING = "finishing"
    FINISHED = "finished"


class Recorder:
    """Records one publisher into fMP4 HLS in `directory`.

    States: recording -> finishing (`finish()` called) -> finished. `truncated` may
    become True while recording (disk full): the playlist is then closed and RTP is
    still accepted, and dropped. Create it on the event loop: the SFU calls `on_rtp`
    there, and playlist waiters are woken there.
    """

    def __init__(
        self,
        directory: Path,
        tracks: Sequence[TrackInfo],
        *,
        request_keyframe: Callable[[], None] | None = None,
        config: RecorderConfig | None = None,
        origin: Origin | None = None,
        tally: RecordingTally | None = None,
    ) -> None:
        self.directory = directory
        self._tally = tally or RecordingTally()
        self.config = config or RecorderConfig()
        self.state = RecorderState.RECORDING
        self.truncated = False
        self._loop = asyncio.get_running_loop()
        self._origin = origin or Origin()
        self._files = RecordingFiles(directory, self.config.max_bytes)
        self._files.prepare()
        self.playlist = Playlist(self.config)
        self._changed = self._loop.create_future()
        self._stopped: asyncio.Future[Stopped] = self._loop.create_future()
        self._ingests = self._build_ingests(tracks, request_keyframe or _ignore)
        self._muxer = Muxer(tracks, self.config, self._files, self._post, lambda: self._origin.wall)
        self._muxer.start()
        self._dropping_video = False
        self.frames_dropped = 0
        # When each of the latest parts was written (monotonic), for benchmarks; bounded, since
        # a show adds three a second for hours.
        self.part_times: collections.deque[float] = collections.deque(maxlen=PART_TIMES_KEPT)
        self.video_size: tuple[int, int] | None = None
        for policy in self._policies:
            policy.ask(self._origin.now())  # a recording starts at a keyframe

    def _build_ingests(
        self, tracks: Sequence[TrackInfo], request: Callable[[], None]
    ) -> dict[str, TrackIngest]:
        ingests: dict[str, TrackIngest] = {}
        self._policies: list[KeyframePolicy] = []
        for track in tracks:
            policy = None
            if track.kind == "video":
                remux = track.codec == "H264"
                policy = KeyframePolicy(
                    request,
                    clock_rate=track.clock_rate,
                    periodic_after=self.config.keyframe_request_after if remux else None,
                )
                self._policies.append(policy)
            ingests[track.kind] = TrackIngest(track, self._origin, policy)
        return ingests

    # The SFU's tap --------------------------------------------------------------------------

    def on_rtp(self, kind: str, packet: bytes) -> None:
        """Take one decrypted RTP packet of the publisher. Never blocks, never raises."""
        try:
            ingest = self._ingests.get(kind)
            if ingest is None or self.state is not RecorderState.RECORDING or self.truncated:
                return
            for frame in ingest.push(packet):
                self._submit(frame)
        except Exception:  # the SFU's packet path must survive anything we do wrong
            log.debug("recorder: packet ignored", exc_info=True)

    def _submit(self, frame: TimedFrame) -> None:
        # A stuck muxer must not eat memory: shed load, restarting video at a keyframe.
        if self._muxer.backlog() > self.config.max_queue:
            self.frames_dropped += 1
            self._dropping_video = self._dropping_video or frame.kind == "video"
            return
        if frame.kind == "video" and self._dropping_video:
            if not frame.keyframe:
                self.frames_dropped += 1
                return
            self._dropping_video = False
        self._muxer.submit(frame)

    # Timed metadata ---------------------------------------------------------------------

    def add_cue(self, cue: Cue) -> None:
        """Add a date range (product pin/unpin/tag) to the live and VOD playlists."""
        self.playlist.add_cue(cue)
        self._muxer.write_cue(cue.to_json() + "\n")  # kept for `repair` after a crash
        self._wake()

    # Serving ------------------------------------------------------------------------------

    def playlist_text(self, skip: bool | str = False) -> str:
        """The media playlist; `skip` is the `_HLS_skip` value (True/"YES" or "v2")."""
        mode = Skip.NO
        if skip is True or skip == "YES":
            mode = Skip.YES
        elif skip == "v2":
            mode = Skip.V2
        return self.playlist.render(mode)

    def vod_playlist_text(self) -> str:
        """The VOD playlist (no parts or hints); complete once `finish()` has returned."""
        return self.playlist.render_vod()

    def stats(self) -> dict[str, int | float | bool | str]:
        """Counters for the admin dashboard's stream health."""
        counters: dict[str, int | float | bool | str] = {
            "state": self.state.value,
            "truncated": self.truncated,
            "segments": len(self.playlist.segments),
            "duration": round(self.playlist.duration, 3),
            "backlog": self._muxer.backlog(),
            "worker_errors": self._muxer.errors,
            "frames_shed": self.frames_dropped,
            "keyframe_requests": sum(policy.requests for policy in self._policies),
            "bytes_written": self._files.bytes_written,
        }
        for kind, ingest in self._ingests.items():
            counters[f"{kind}_packets"] = ingest.packets
            counters[f"{kind}_frames"] = ingest.frames
            counters[f"{kind}_frames_dropped"] = ingest.dropped
        return counters

    def too_far(self, msn: int, part: int | None = None) -> bool:
        """True when _HLS_msn is beyond what blocking may wait for (answer 400)."""
        return self.playlist.too_far(msn, part)

    async def wait_for(self, msn: int, part: int | None = None, timeout: float = 6.0) -> bool:  # noqa: ASYNC109
        """Block until the playlist holds segment `msn` (and its part `part`, if given).

        Returns False on timeout (answer 503 per RFC 8216bis); True when it is there or the
        recording has ended (then the final playlist answers the request).
        """
        deadline = self._loop.time() + timeout
        while not self.playlist.has(msn, part):
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(asyncio.shield(self._changed), remaining)
            except TimeoutError:
                return False
        return True

    async def resolve(self, name: str, timeout: float = 6.0) -> Path | None:  # noqa: ASYNC109
        """The path of a servable file, waiting for a preload-hinted part to appear.

        None for names that are not part of this recording (answer 404).
        """
        match = _SERVABLE.match(name)
        if match is None:
            return None
        if match.group(2) is not None:
            number = int(match.group(2))
            deadline = self._loop.time() + timeout
            while not self._part_exists(number) and not self.playlist.ended:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(asyncio.shield(self._changed), remaining)
                except TimeoutError:
                    return None
        path = self._files.path(name)
        return path if path.exists() else None

    def _part_exists(self, number: int) -> bool:
        playlist = self.playlist
        last = playlist.parts[-1] if playlist.parts else None
        if last is None and playlist.segments:
            last = playlist.segments[-1].parts[-1]
        return last is not None and last.number >= number

    # Ending -------------------------------------------------------------------------------

    async def finish(self, timeout: float = 30.0) -> RecordingResult:  # noqa: ASYNC109
        """Flush the last segment, close the playlists, write the poster (idempotent)."""
        if self.state is RecorderState.RECORDING:
            self.state = RecorderState.FINISHING
            for ingest in self._ingests.values():
                for frame in ingest.flush():
                    self._submit(frame)
            self._muxer.finish()
        stopped = await asyncio.wait_for(asyncio.shield(self._stopped), timeout)
        if self.state is not RecorderState.FINISHED:
            self.playlist.end()
            await asyncio.to_thread(self._write_playlists)
            self.state = RecorderState.FINISHED
            self._wake()
        return self._result(stopped)

    def _write_playlists(self) -> None:
        try:
            self._files.write_text(LIVE_PLAYLIST, self.playlist.render())
            self._files.write_text(VOD_PLAYLIST, self.playlist.render_vod())
        except Exception:  # a full disk must not turn the end of a show into an error
            log.warning("recorder: could not write the final playlists", exc_info=True)

    def _result(self, stopped: Stopped) -> RecordingResult:
        names = [INIT, *(segment.uri for segment in self.playlist.segments)]
        names += [LIVE_PLAYLIST, VOD_PLAYLIST]
        if stopped.poster:
            names.append(POSTER)
        if self._files.path(CUES).exists():
            names.append(CUES)
        files = [name for name in names if self._files.path(name).exists()]
        return RecordingResult(
            directory=self.directory,
            duration=self.playlist.duration,
            segments=len(self.playlist.segments),
            files=files,
            truncated=self.truncated,
            media=self.playlist.media,
            poster=POSTER if stopped.poster else None,
            error=stopped.error,
        )

    # Worker events (delivered on the loop) ------------------------------------------------

    def _post(self, event: MuxerEvent) -> None:
        """Called on the muxer thread: hand the event to the loop."""
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._on_event, event)

    def _on_event(self, event: MuxerEvent) -> None:
        playlist = self.playlist
        if isinstance(event, PartWritten):
            playlist.add_part(event.part)
            self.part_times.append(self._origin.now())
        elif isinstance(event, SegmentWritten):
            playlist.add_segment(event.segment)
            self._tally.segment(event.segment.size)
        elif isinstance(event, Started):
            wall = self._origin.wall + event.start
            playlist.start = datetime.fromtimestamp(wall, UTC)
            self.video_size = event.size
        elif isinstance(event, KeyframeWanted):
            for policy in self._policies:
                policy.ask(self._origin.now())
        elif isinstance(event, Truncated):
            self.truncated = True
            playlist.end()
            self._loop.run_in_executor(None, self._write_playlists)
        elif isinstance(event, Stopped) and not self._stopped.done():
            self._stopped.set_result(event)
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, self._loop.create_future()
        if not changed.done():
            changed.set_result(None)


def _ignore() -> None:
    return None
