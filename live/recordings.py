"""Recording shows on this node: a Recorder per live stream, fed by its publisher's RTP.

Per stream: recording (while the show runs; a new publisher is tapped again) -> finishing
(the show ended: last segment, playlists, poster) -> uploading (to the object store; the
local copy goes only after the store confirms it) -> published (``vod_url`` is set).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Protocol

from recorder import (
    Cue,
    Recorder,
    RecorderConfig,
    TrackInfo,
    UploadQueue,
    needs_repair,
    repair,
)
from recorder.files import POSTER, VOD_PLAYLIST
from sfu import Sfu
from twins.objectstore import ObjectStore

log = logging.getLogger(__name__)
UPLOAD_DEADLINE_SECONDS = 600


class Replays(Protocol):
    """Where a show's recording is wanted and its replay published (``api.shows.replays``)."""

    async def wanted(self, stream_id: str) -> bool:
        """Whether the seller asked for the show to be recorded."""
        ...

    async def truncated(self, stream_id: str) -> None:
        """The recording stopped early (the disk filled up)."""
        ...

    async def published(self, stream_id: str, vod_url: str, thumbnail_url: str | None) -> None:
        """The replay is in the object store at ``vod_url``."""
        ...


class Recordings:
    def __init__(
        self,
        sfu: Sfu,
        replays: Replays,
        store: ObjectStore,
        directory: Path,
        config: RecorderConfig,
    ) -> None:
        self._sfu = sfu
        self._replays = replays
        self._store = store
        self._directory = directory
        self.config = config  # for the recordings started from now on
        self._active: dict[str, Recorder] = {}
        self._work: set[asyncio.Task[None]] = set()

    def recorder(self, stream_id: str) -> Recorder | None:
        return self._active.get(stream_id)

    async def media_started(self, stream_id: str) -> None:
        """A publisher's media arrived: start recording, or tap the publisher that took over."""
        tracks = self._sfu.tracks(stream_id)
        if not tracks:
            return
        recorder = self._active.get(stream_id)
        if recorder is None:
            if not await self._replays.wanted(stream_id) or stream_id in self._active:
                return
            infos = [
                TrackInfo(
                    "video" if t.kind == "video" else "audio", t.codec, t.payload_type, t.clock_rate
                )
                for t in tracks
            ]
            recorder = Recorder(
                self._directory / stream_id,
                infos,
                request_keyframe=lambda: self._sfu.request_keyframe(stream_id),
                config=self.config,
            )
            self._active[stream_id] = recorder
        self._sfu.tap(stream_id, recorder.on_rtp)

    def add_cue(self, stream_id: str, cue: Cue) -> None:
        recorder = self._active.get(stream_id)
        if recorder is not None:
            recorder.add_cue(cue)

    def stream_finished(self, stream_id: str) -> None:
        recorder = self._active.get(stream_id)
        if recorder is not None:
            self._spawn(self._publish(stream_id, recorder))

    async def _publish(self, stream_id: str, recorder: Recorder) -> None:
        try:
            result = await recorder.finish()
        finally:
            self._active.pop(stream_id, None)
        if result.truncated:
            await self._replays.truncated(stream_id)
        await self._upload(stream_id, result.directory, result.files)
        log.info(
            "recording of %s: %.1f s%s",
            stream_id,
            result.duration,
            " (truncated)" if result.truncated else "",
        )

    async def _upload(self, stream_id: str, directory: Path, files: list[str]) -> None:
        """Upload (or resume uploading) a finished recording, then publish its VOD URL."""
        prefix = f"vod/{stream_id}"
        queue = UploadQueue(directory, self._store, prefix=prefix)
        await queue.add(files)
        queue.start()
        try:
            async with asyncio.timeout(UPLOAD_DEADLINE_SECONDS):
                await queue.drain()
        finally:
            await queue.close()
        playlist, poster = f"{prefix}/{VOD_PLAYLIST}", f"{prefix}/{POSTER}"
        if await self._store.exists(playlist):
            vod_url = await self._store.url_for(playlist)
            has_poster = await self._store.exists(poster)
            thumbnail = await self._store.url_for(poster) if has_poster else None
            await self._replays.published(stream_id, vod_url, thumbnail)
        # Published: what is left locally (journal, metadata) is no longer needed, and start-up
        # must not find this recording again.
        await asyncio.to_thread(shutil.rmtree, directory, True)

    async def recover(self) -> list[str]:
        """At start-up: repair the recordings a crash cut short and finish their uploads.

        Returns the streams whose recording was cut short: their show died with this node.
        """
        if not self._directory.exists():
            return []
        cut: list[str] = []
        for directory in sorted(p for p in self._directory.iterdir() if p.is_dir()):
            files: list[str] = []
            if needs_repair(directory):
                files = (await asyncio.to_thread(repair, directory)).files
                cut.append(directory.name)
            if files or any(directory.iterdir()):
                self._spawn(self._upload(directory.name, directory, files))
        return cut

    def _spawn(self, work: object) -> None:
        task = asyncio.ensure_future(work)  # type: ignore[call-overload]
        self._work.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._work.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("recording work failed", exc_info=task.exception())

    async def close(self) -> list[str]:
        """Shutting down: finish and publish what is recording; return those streams."""
        stopped = list(self._active)
        for stream_id, recorder in list(self._active.items()):
            self._spawn(self._publish(stream_id, recorder))
        if self._work:
            await asyncio.wait(self._work, timeout=30)
        return stopped
