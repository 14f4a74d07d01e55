"""Recording shows on this node: a Recorder per live stream, fed by its publisher's RTP.

With ``ladder`` (SHOPCAST_HLS_LADDER), a simulcast H.264 publisher is recorded as an HLS
ladder: the largest layer by the stream's own Recorder (its directory, its playlists, as
without simulcast), and each other layer by a Recorder in a subdirectory named by its RID,
with the audio in each; a master playlist lists them, live and in the replay. Without it, the
largest layer only.

Per stream: recording (while the show runs; a new publisher is tapped again) -> finishing
(the show ended: last segment, playlists, poster) -> uploading (to the object store; the
local copy goes only after the store confirms it) -> published (``vod_url`` is set).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from recorder import (
    Cue,
    Recorder,
    RecorderConfig,
    RecordingTally,
    TrackInfo,
    UploadQueue,
    needs_repair,
    repair,
)
from recorder.files import LIVE_PLAYLIST, POSTER, VOD_PLAYLIST
from recorder.ladder import MASTER_PLAYLIST, master_playlist, measure
from recorder.result import RecordingResult
from recorder.timeline import Origin
from recorder.upload import JOURNAL
from sfu import PublishedTrack
from twins.objectstore import ObjectStore

log = logging.getLogger(__name__)
UPLOAD_DEADLINE_SECONDS = 600


class Publishers(Protocol):
    """What recording needs of the SFU (``sfu.Sfu``), by room id."""

    def tracks(self, room_id: str) -> list[PublishedTrack]: ...

    def tap(self, room_id: str, listener: Callable[[str, bytes], None]) -> bool: ...

    def tap_layer(self, room_id: str, rid: str, listener: Callable[[str, bytes], None]) -> bool: ...

    def request_keyframe(self, room_id: str, rid: str | None = None) -> None: ...


class Replays(Protocol):
    """Where a show's recording is wanted and its replay published (``api.shows.replays``)."""

    async def wanted(self, stream_id: str) -> bool:
        """Whether the seller asked for the show to be recorded."""
        ...

    async def truncated(self, stream_id: str) -> None:
        """The recording stopped early (the disk filled up)."""
        ...

    async def published(
        self,
        stream_id: str,
        vod_url: str,
        thumbnail_url: str | None,
        media: tuple[datetime, datetime] | None,
    ) -> None:
        """The replay is in the object store at ``vod_url``; ``media``: when its first and last
        media arrived (the replay's time 0 and its end), if known."""
        ...


class Recordings:
    def __init__(
        self,
        sfu: Publishers,
        replays: Replays,
        store: ObjectStore,
        directory: Path,
        config: RecorderConfig,
        *,
        ladder: bool = False,
    ) -> None:
        self._sfu = sfu
        self._ladder = ladder  # a Recorder per simulcast layer, or the largest only
        self._replays = replays
        self._store = store
        self._directory = directory
        self.config = config  # for the recordings started from now on
        self._active: dict[str, Recorder] = {}
        self._ladders: dict[str, dict[str, Recorder]] = {}  # the other layers' Recorders, by RID
        self._work: set[asyncio.Task[None]] = set()
        self.tally = RecordingTally()  # over every recording and upload of this node

    def recorder(self, stream_id: str, rid: str | None = None) -> Recorder | None:
        """The stream's Recorder, or that of its rendition ``rid``."""
        if rid is None:
            return self._active.get(stream_id)
        return self._ladders.get(stream_id, {}).get(rid)

    def master_text(self, stream_id: str) -> str | None:
        """The live master playlist: every rendition that has a segment; None before any."""
        recorder = self._active.get(stream_id)
        if recorder is None:
            return None
        return _master(recorder, self._lower(stream_id), LIVE_PLAYLIST, whole=False)

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
            directory = self._directory / stream_id
            video = next((t for t in tracks if t.kind == "video"), None)
            layered = self._ladder and video is not None and video.codec == "H264"
            rids = video.rids if layered and video is not None else ()
            origin = Origin()  # one timeline for every rendition
            recorder = self._recorder(
                directory, infos, stream_id, rids[-1] if rids else None, origin
            )
            self._active[stream_id] = recorder
            self._ladders[stream_id] = {
                rid: self._recorder(directory / rid, infos, stream_id, rid, origin)
                for rid in rids[:-1]
            }
            if rids:
                self._ladders[stream_id][rids[-1]] = recorder
        ladder = self._ladders.get(stream_id, {})
        if not ladder:
            self._sfu.tap(stream_id, recorder.on_rtp)
            return
        # The renditions share the audio; each takes the video of its own layer, the stream's
        # own Recorder that of the last offered (the largest).
        self._sfu.tap(stream_id, _audio_to(ladder.values()))
        for rid, rendition in ladder.items():
            self._sfu.tap_layer(stream_id, rid, rendition.on_rtp)

    def _lower(self, stream_id: str) -> dict[str, Recorder]:
        """The Recorders of the stream's other renditions, by RID."""
        main = self._active.get(stream_id)
        return {rid: r for rid, r in self._ladders.get(stream_id, {}).items() if r is not main}

    def _recorder(
        self,
        directory: Path,
        tracks: list[TrackInfo],
        stream_id: str,
        rid: str | None,
        origin: Origin,
    ) -> Recorder:
        """A Recorder of the stream, or of its layer ``rid``; a ladder's share ``origin``."""
        return Recorder(
            directory,
            tracks,
            request_keyframe=functools.partial(self._sfu.request_keyframe, stream_id, rid),
            config=self.config if rid is None else replace(self.config, zero_at_origin=True),
            origin=origin,
            tally=self.tally,
        )

    def add_cue(self, stream_id: str, cue: Cue) -> None:
        recorder = self._active.get(stream_id)
        if recorder is not None:
            recorder.add_cue(cue)
        for rendition in self._lower(stream_id).values():
            rendition.add_cue(cue)

    def stream_finished(self, stream_id: str) -> None:
        recorder = self._active.get(stream_id)
        if recorder is not None:
            self._spawn(self._publish(stream_id, recorder))

    async def _publish(self, stream_id: str, recorder: Recorder) -> None:
        lower = self._lower(stream_id)
        try:
            result = await recorder.finish()
            finished = await asyncio.gather(
                *(r.finish() for r in lower.values()), return_exceptions=True
            )
        finally:
            self._active.pop(stream_id, None)
            self._ladders.pop(stream_id, None)
        if result.truncated:
            await self._replays.truncated(stream_id)
        layers = {
            rid: outcome.files
            for rid, outcome in zip(lower, finished, strict=True)
            if isinstance(outcome, RecordingResult) and outcome.segments
        }
        files = list(result.files)
        if layers:
            kept = {rid: lower[rid] for rid in layers}
            text = await asyncio.to_thread(_master, recorder, kept, VOD_PLAYLIST, whole=True)
            if text is not None:
                await asyncio.to_thread((result.directory / MASTER_PLAYLIST).write_text, text)
                files.append(MASTER_PLAYLIST)
        await self._upload(stream_id, result.directory, files, layers, result.media)
        log.info(
            "recording of %s: %.1f s%s",
            stream_id,
            result.duration,
            " (truncated)" if result.truncated else "",
        )

    async def _upload(
        self,
        stream_id: str,
        directory: Path,
        files: list[str],
        layers: dict[str, list[str]],
        media: tuple[datetime, datetime] | None = None,
    ) -> None:
        """Upload (or resume uploading) a finished recording, then publish its VOD URL.

        Every queue is journaled before any uploads, and the renditions go first: the master
        playlist, uploaded last with the stream's own files, never names a missing one.
        """
        prefix, store, tally = f"vod/{stream_id}", self._store, self.tally
        queues = [
            (UploadQueue(directory / rid, store, prefix=f"{prefix}/{rid}", tally=tally), names)
            for rid, names in layers.items()
        ]
        queues.append((UploadQueue(directory, store, prefix=prefix, tally=tally), files))
        for queue, names in queues:
            await queue.add(names)
        try:
            async with asyncio.timeout(UPLOAD_DEADLINE_SECONDS):
                for queue, _ in queues:
                    queue.start()
                    await queue.drain()
        finally:
            for queue, _ in queues:
                await queue.close()
        master, poster = f"{prefix}/{MASTER_PLAYLIST}", f"{prefix}/{POSTER}"
        playlist = (
            master if layers and await self._store.exists(master) else f"{prefix}/{VOD_PLAYLIST}"
        )
        if await self._store.exists(playlist):
            vod_url = await self._store.url_for(playlist)
            has_poster = await self._store.exists(poster)
            thumbnail = await self._store.url_for(poster) if has_poster else None
            await self._replays.published(stream_id, vod_url, thumbnail, media)
        # Published: what is left locally (journal, metadata) is no longer needed, and start-up
        # must not find this recording again.
        await asyncio.to_thread(shutil.rmtree, directory, True)

    async def recover(self, cut_short: Callable[[str], Awaitable[None]]) -> None:
        """At start-up: repair the recordings a crash cut short and finish their uploads.

        ``cut_short`` is awaited for each stream whose recording was cut short (its show died
        with this node) before its upload starts, so the replay's publication comes after it.
        """
        if not self._directory.exists():
            return
        for directory in sorted(p for p in self._directory.iterdir() if p.is_dir()):
            files: list[str] = []
            media = None
            if needs_repair(directory):
                repaired = await asyncio.to_thread(repair, directory)
                files, media = repaired.files, repaired.media
                await cut_short(directory.name)
            # A rendition cut short by the crash is dropped; one whose upload began resumes.
            layers: dict[str, list[str]] = {
                p.name: [] for p in directory.iterdir() if p.is_dir() and (p / JOURNAL).exists()
            }
            if files or any(directory.iterdir()):
                self._spawn(self._upload(directory.name, directory, files, layers, media))

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


def _audio_to(recorders: Iterable[Recorder]) -> Callable[[str, bytes], None]:
    """A tap that hands the audio, and nothing else, to each of ``recorders``."""
    receivers = [r.on_rtp for r in recorders]

    def tee(kind: str, packet: bytes) -> None:
        if kind == "audio":
            for receive in receivers:
                receive(kind, packet)

    return tee


def _master(
    recorder: Recorder, lower: dict[str, Recorder], playlist: str, *, whole: bool
) -> str | None:
    renditions = [measure(r, rid, f"{rid}/{playlist}", whole=whole) for rid, r in lower.items()]
    renditions.append(measure(recorder, "top", playlist, whole=whole))
    measured = [r for r in renditions if r is not None]
    return master_playlist(measured) if measured else None
