"""The muxer: muxing, transcoding and file writes on a thread of their own."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import av

from .config import RecorderConfig
from .events import (
    KeyframeWanted,
    MuxerEvent,
    PartWritten,
    SegmentWritten,
    Started,
    Stopped,
    Truncated,
)
from .files import CUES, META, POSTER, DiskFull, RecordingFiles
from .fragmenter import Fragment, Fragmenter
from .frame import TimedFrame
from .poster import poster_jpeg, probe_size
from .segmenter import Segmenter, SegmentRecord
from .track import TrackInfo
from .transcode import AudioTranscoder, VideoTranscoder

log = logging.getLogger(__name__)

_FINISH = object()
_VIDEO_RATE = 90000
_AUDIO_RATE = 48000


class Muxer:
    """Consumes timed frames from a queue and writes the HLS files.

    States: waiting (for the first keyframe) -> muxing -> stopped; `truncated` (disk
    full) stops writing but keeps draining the queue until `finish()`. All PyAV work
    happens on this thread (PyAV releases the GIL inside FFmpeg), never on the event loop.
    """

    def __init__(
        self,
        tracks: Sequence[TrackInfo],
        config: RecorderConfig,
        files: RecordingFiles,
        post: Callable[[MuxerEvent], None],
        wall_origin: Callable[[], float],
    ) -> None:
        self._config = config
        self._files = files
        self._post = post
        self._wall_origin = wall_origin
        self._video = next((t for t in tracks if t.kind == "video"), None)
        self._has_audio = any(t.kind == "audio" for t in tracks)
        self._transcoder = (
            VideoTranscoder(self._video.codec, config.transcode_bitrate)
            if self._video is not None and self._video.codec != "H264"
            else None
        )
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="recorder-media", daemon=True)
        self._segmenter = Segmenter(config.segment_min, config.segment_max)
        self._fragmenter: Fragmenter | None = None
        self._audio: AudioTranscoder | None = None
        self._t0_video = self._t0_audio = 0
        self._last_video_pts: int | None = None
        self._last_forced: int | None = None
        self._poster: tuple[str, bytes, float] | None = None
        self._init_written = False
        self._closed: deque[SegmentRecord] = deque()
        self.truncated = False
        self.errors = 0

    # Event loop side -------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def backlog(self) -> int:
        return self._queue.qsize()

    def submit(self, frame: TimedFrame) -> None:
        self._queue.put(frame)

    def write_cue(self, line: str) -> None:
        self._queue.put(line)

    def finish(self) -> None:
        self._queue.put(_FINISH)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # Worker thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _FINISH:
                self._finish()
                return
            self._handle(item)
            if self._queue.empty() and self._config.worker_batch > 0:
                # Waking once per batch instead of once per frame keeps caches warm and
                # cuts the muxer's CPU by a third; it delays parts by at most this much.
                time.sleep(self._config.worker_batch)

    def _handle(self, item: object) -> None:
        if self.truncated:
            return
        try:
            if isinstance(item, str):
                self._files.append_text(CUES, item)
            elif isinstance(item, TimedFrame):
                self._on_frame(item)
        except DiskFull as error:
            self._truncate(str(error))
        except Exception:
            self.errors += 1
            if self.errors <= 3:  # a pathological stream must not flood the log
                log.exception("recorder: frame dropped")

    def _on_frame(self, frame: TimedFrame) -> None:
        if frame.kind == "audio":
            self._on_audio(frame)
        elif self._transcoder is not None:
            self._on_transcoded_video(frame)
        else:
            self._on_video(frame.data, frame.pts, frame.keyframe, "h264")

    def _on_video(self, data: bytes, pts: int, keyframe: bool, codec: str) -> None:
        if self._fragmenter is None:
            if not keyframe:
                return
            size = self._transcoder.size if self._transcoder else probe_size(data)
            if size is None:
                return
            self._begin(0.0 if self._config.zero_at_origin else pts / _VIDEO_RATE, size)
        fragmenter = self._fragmenter
        assert fragmenter is not None
        if keyframe and codec == "h264":
            self._keep_poster("h264", data, pts)
        relative = pts - self._t0_video
        last = self._last_video_pts
        duration = relative - last if last is not None and relative > last else 3000
        self._last_video_pts = relative
        self._emit(fragmenter.add_video(data, relative, keyframe, duration))

    def _on_transcoded_video(self, frame: TimedFrame) -> None:
        transcoder = self._transcoder
        assert transcoder is not None
        if self._last_forced is None and not frame.keyframe:
            return  # a VP8 decoder can only start at a keyframe
        interval = self._config.forced_keyframe_interval * _VIDEO_RATE
        force = self._last_forced is None or frame.pts - self._last_forced >= interval
        try:
            outputs = transcoder.add(frame.data, frame.pts, force)
        except av.FFmpegError:
            self._post(KeyframeWanted())
            return
        if force:
            self._last_forced = frame.pts
        if frame.keyframe:
            self._keep_poster("vp8", frame.data, frame.pts)
        for data, pts, keyframe in outputs:
            self._on_video(data, pts, keyframe, "transcoded")

    def _on_audio(self, frame: TimedFrame) -> None:
        if self._fragmenter is None and self._video is None:
            self._begin(frame.pts / _AUDIO_RATE, None)
        if self._fragmenter is None or self._audio is None:
            return  # before the first video keyframe: the recording has not started
        relative = frame.pts - self._t0_audio
        if relative < 0:
            return
        self._emit(self._fragmenter.add_audio(self._audio.add(frame.data, relative)))

    def _begin(self, start: float, video_size: tuple[int, int] | None) -> None:
        config = self._config
        fragmenter = Fragmenter(
            video_size=video_size,
            audio_channels=config.audio_channels if self._has_audio else None,
            fragment_duration=config.fragment_duration,
            audio_bitrate=config.audio_bitrate,
            keep_times=config.zero_at_origin,
        )
        self._fragmenter = fragmenter
        if fragmenter.audio_encoder is not None:
            self._audio = AudioTranscoder(fragmenter.audio_encoder)
        self._t0_video = round(start * _VIDEO_RATE)
        self._t0_audio = round(start * _AUDIO_RATE)
        meta = {"start": self._wall_origin() + start, "config": _config_summary(config)}
        self._files.write_text(META, json.dumps(meta))
        self._post(Started(start, video_size))

    def _keep_poster(self, codec: str, data: bytes, pts: int) -> None:
        # The first picture is often dark (camera warming up): prefer one a little later. Each
        # choice is written at once, so that the live show has a poster (the home page's).
        if self._poster is None or self._poster[2] < self._config.poster_at:
            self._poster = (codec, data, pts / _VIDEO_RATE)
            self._write_poster()

    def _emit(self, fragments: list[Fragment]) -> None:
        fragmenter = self._fragmenter
        if not self._init_written and fragmenter is not None and fragmenter.init is not None:
            self._files.write_init(fragmenter.init)
            self._init_written = True
        for fragment in fragments:
            closed, part = self._segmenter.place(fragment)
            if closed is not None:
                self._post(SegmentWritten(closed))
                self._prune(closed)
            segment = self._segmenter.current
            assert segment is not None
            self._files.write_part(part, segment.uri, fragment.data)
            self._post(PartWritten(part))

    def _prune(self, closed: SegmentRecord) -> None:
        # Parts are listed for the last `parts_window` segments only; older files can go.
        self._closed.append(closed)
        while len(self._closed) > self._config.parts_window + 1:
            self._files.remove_parts(self._closed.popleft().parts)

    def _truncate(self, reason: str) -> None:
        self.truncated = True
        current = self._segmenter.current
        if current is not None:  # its file may end mid-part: it is not part of the recording
            self._files.remove(current.uri)
            self._files.remove_parts(current.parts)
            self._segmenter.current = None
        log.warning("recorder: disk full, recording truncated: %s", reason)
        self._post(Truncated(reason))

    def _finish(self) -> None:
        error: str | None = None
        try:
            self._flush()
        except DiskFull as full:
            self._truncate(str(full))
        except Exception as failure:
            log.exception("recorder: flush failed")
            error = repr(failure)
        poster = self._write_poster()
        self._files.remove_all_parts()  # a finished recording is served as whole segments
        self._post(Stopped(poster, error))

    def _flush(self) -> None:
        fragmenter = self._fragmenter
        if self.truncated or fragmenter is None:
            return
        if self._transcoder is not None:
            for data, pts, keyframe in self._transcoder.flush():
                self._on_video(data, pts, keyframe, "transcoded")
        if self._audio is not None:
            self._emit(fragmenter.add_audio(self._audio.flush()))
        self._emit(fragmenter.close())
        last = self._segmenter.close()
        if last is not None:
            self._post(SegmentWritten(last))

    def _write_poster(self) -> bool:
        if self._poster is None:
            return False
        try:
            jpeg = poster_jpeg(self._poster[0], self._poster[1])
            if jpeg is None:
                return False
            self._files.write_bytes(POSTER, jpeg)
        except (DiskFull, OSError):
            return False
        return True


def _config_summary(config: RecorderConfig) -> dict[str, float]:
    return {
        "part_target": config.part_target,
        "target_duration": config.target_duration,
        "segment_max": config.segment_max,
        "dvr_seconds": config.dvr_seconds,
    }
