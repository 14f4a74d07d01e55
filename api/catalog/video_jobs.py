"""Durable media jobs: uploaded videos processed by workers that may die at any moment.

A job is a row (`media_jobs`). A worker claims the oldest runnable one under a lease
(PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED`; SQLite: the same statement inside the
write transaction that `BEGIN IMMEDIATE` already serializes), renews the lease while it
works and writes progress. A job whose lease ran out is claimed again by any worker; after
`max_attempts` tries it fails. The PyAV work runs in a child process
(`api.catalog.renditions`), so FFmpeg never blocks the event loop and a crash inside it costs
one try, not the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Update, and_, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.catalog.models import JobState, MediaJob, MediaState, ProductMedia
from api.db import utcnow
from api.web.errors import database_unreachable
from api.web.metrics import Metrics
from twins.objectstore import ObjectStore

log = logging.getLogger(__name__)

# How long a stopping worker keeps trying to hand its job back while the database is locked or
# away (within compose's 45 s stop_grace_period); after that the lease's end hands it back.
HANDBACK_SECONDS = 25.0
# What the store says each output is (S3 keeps it; the local store's route reads it too).
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
}


class JobFailed(Exception):
    """This try failed; `retry` says whether another try could succeed."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


class LeaseLost(Exception):
    """Another worker took the job over (this one was presumed dead)."""


@dataclass(frozen=True)
class WorkerConfig:
    lease_seconds: float = 30.0
    timeout_seconds: float = 1800.0
    poll_seconds: float = 1.0


def runnable() -> Any:
    """Jobs a worker may take: queued, or running under a lease that ran out."""
    now = utcnow()
    return or_(
        MediaJob.state == JobState.QUEUED,
        and_(MediaJob.state == JobState.RUNNING, MediaJob.lease_expires_at < now),
    )


class VideoWorker:
    """Claims video jobs one at a time and runs them to an end.

    States: idle (polling) -> working (one job) -> idle ...; `close()` stops it, killing the
    child process of a job in progress and handing that job back to the queue. It cancels
    only the job's processing, never a query: a query cut short leaves its connection to be
    closed after the event loop is gone.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        store: ObjectStore,
        work_dir: Path,
        config: WorkerConfig,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions, self._reads = sessions, reads
        self._metrics = metrics or Metrics()
        self._store = store
        self._work_dir = work_dir
        self._config = config
        self.name = f"worker-{secrets.token_hex(6)}"
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._processing: asyncio.Task[dict[str, Any]] | None = None

    def start(self) -> None:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def close(self) -> None:
        self._stop.set()
        if self._processing is not None:
            self._processing.cancel()
        if self._task is not None:
            await self._task
            self._task = None

    def _running(self, job_id: str) -> Update:
        """An UPDATE of ``job_id`` while this worker runs it (no row once another has it)."""
        return update(MediaJob).where(
            MediaJob.id == job_id, MediaJob.worker == self.name, MediaJob.state == JobState.RUNNING
        )

    async def _release(self, job_id: str) -> None:
        """Give a job this worker stopped in the middle of back to the queue, at once: tried
        again while the database is locked (SQLite shared with a busy node) or away, for
        ``HANDBACK_SECONDS``."""
        deadline = time.monotonic() + HANDBACK_SECONDS
        while True:
            try:
                async with self._sessions.begin() as session:
                    await session.execute(
                        self._running(job_id).values(
                            state=JobState.QUEUED,
                            attempts=MediaJob.attempts - 1,
                            progress=0,
                            worker=None,
                            lease_expires_at=None,
                        )
                    )
                break
            except DBAPIError as exc:
                if not database_unreachable(exc) or time.monotonic() >= deadline:
                    raise
                log.warning("media job %s: handing back failed (%s); trying again", job_id, exc)
                await asyncio.sleep(0.5)
        log.info("media job %s: handed back to the queue (worker stopping)", job_id)

    async def run(self) -> None:
        """Work until stopped; errors of one job (or of the database) never end the loop."""
        while not self._stop.is_set():
            try:
                job = await self.claim()
                if job is not None:
                    await self.work(job)
                    continue
            except Exception:
                log.exception("media worker %s: unexpected error", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._config.poll_seconds)

    async def claim(self) -> MediaJob | None:
        """Take the oldest runnable job under a fresh lease, or None if there is none."""
        async with self._reads() as session:
            if await session.scalar(select(MediaJob.id).where(runnable()).limit(1)) is None:
                return None  # the common case answers from a read, without the write lock
        async with self._sessions.begin() as session:
            while True:
                job = await session.scalar(
                    select(MediaJob)
                    .where(runnable())
                    .order_by(MediaJob.created_at, MediaJob.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if job is None:
                    return None
                if job.attempts < job.max_attempts:
                    break
                reason = job.error or "its worker stopped before it finished"
                await _fail(session, job, f"gave up after {job.attempts} tries: {reason}")
            job.state = JobState.RUNNING
            job.attempts += 1
            job.progress = 0
            job.worker = self.name
            job.lease_expires_at = utcnow() + timedelta(seconds=self._config.lease_seconds)
            return job

    async def work(self, job: MediaJob) -> None:
        """One try at `job`: download, transcode in a child process, upload, attach."""
        log.info("media job %s: try %d by %s", job.id, job.attempts, self.name)
        directory = Path(tempfile.mkdtemp(prefix=f"{job.id}-", dir=self._work_dir))
        progress, finished = _Progress(), asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job.id, progress, finished))
        processing = asyncio.create_task(self._process(job, directory, progress, heartbeat))
        self._processing = processing
        if self._stop.is_set():
            processing.cancel()  # `close()` came while this job was being claimed
        started, outcome = time.perf_counter(), "error"
        try:
            async with asyncio.timeout(self._config.timeout_seconds):
                outputs = await processing
            await self._finish(job, outputs)
            outcome = "done"
        except LeaseLost:
            outcome = "lease_lost"
            log.warning("media job %s: lease lost; another worker has it", job.id)
        except TimeoutError:
            outcome, limit = "timed_out", self._config.timeout_seconds
            await self._retry_or_fail(job, f"processing took longer than {limit:g} s", True)
        except JobFailed as failure:
            outcome = "failed"
            await self._retry_or_fail(job, str(failure), failure.retry)
        except asyncio.CancelledError:
            outcome = "handed_back"
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # this task is cancelled, not only the processing that `close()` stopped
            await self._release(job.id)
        finally:
            self._metrics.media_jobs.labels(outcome).inc()
            self._metrics.media_job_durations.labels(outcome).observe(time.perf_counter() - started)
            self._processing = None
            finished.set()
            await asyncio.gather(heartbeat, return_exceptions=True)
            await asyncio.to_thread(shutil.rmtree, directory, True)

    async def _process(
        self,
        job: MediaJob,
        directory: Path,
        progress: _Progress,
        heartbeat: asyncio.Task[None],
    ) -> dict[str, Any]:
        source, output = directory / "source", directory / "out"
        try:
            await self._store.download(job.upload_key, source)
        except Exception as error:
            raise JobFailed(f"the upload could not be read: {error}", retry=True) from error
        result = await _run_ladder(source, output, job.thumbnail_at, progress, heartbeat)
        prefix = f"media/{job.media_id}"
        try:
            for name in result["files"]:
                content_type = CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
                await self._store.put_file(f"{prefix}/{name}", output / name, content_type)
        except Exception as error:
            raise JobFailed(f"the outputs could not be stored: {error}", retry=True) from error
        return {
            "master_url": await self._store.url_for(f"{prefix}/{result['master']}"),
            "dash_url": await self._store.url_for(f"{prefix}/{result['dash']}"),
            "thumbnail_url": await self._store.url_for(f"{prefix}/{result['thumbnail']}"),
            "metadata": result["metadata"],
            "renditions": result["renditions"],
        }

    async def _heartbeat(self, job_id: str, progress: _Progress, finished: asyncio.Event) -> None:
        """Renew the lease and write progress until ``finished``; raise LeaseLost if another
        worker took over."""
        interval = min(2.0, self._config.lease_seconds / 3)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), interval)
                return
            async with self._sessions.begin() as session:
                renewed = await session.execute(
                    self._running(job_id).values(
                        progress=progress.percent,
                        lease_expires_at=utcnow() + timedelta(seconds=self._config.lease_seconds),
                    )
                )
            if renewed.rowcount == 0:  # type: ignore[attr-defined]
                raise LeaseLost(job_id)

    async def _finish(self, job: MediaJob, outputs: dict[str, Any]) -> None:
        async with self._sessions.begin() as session:
            current = await self._owned(session, job)
            current.state, current.progress, current.outputs = JobState.DONE, 100, outputs
            current.lease_expires_at = None
            media = await session.get(ProductMedia, job.media_id)
            if media is not None:
                media.state = MediaState.READY
                media.url, media.thumbnail_url = outputs["master_url"], outputs["thumbnail_url"]
                media.details = {
                    "dash_url": outputs["dash_url"],
                    "metadata": outputs["metadata"],
                    "renditions": outputs["renditions"],
                }
        log.info("media job %s: done", job.id)

    async def _retry_or_fail(self, job: MediaJob, reason: str, retry: bool) -> None:
        async with self._sessions.begin() as session:
            try:
                current = await self._owned(session, job)
            except LeaseLost:
                return
            if retry and current.attempts < current.max_attempts:
                current.state, current.error = JobState.QUEUED, reason[:500]
                current.worker = current.lease_expires_at = None
                log.warning("media job %s: try %d failed (%s)", job.id, current.attempts, reason)
            else:
                await _fail(session, current, reason)

    async def _owned(self, session: AsyncSession, job: MediaJob) -> MediaJob:
        current = await session.scalar(
            select(MediaJob).where(MediaJob.id == job.id).with_for_update()
        )
        if current is None or current.worker != self.name or current.state != JobState.RUNNING:
            raise LeaseLost(job.id)
        return current


async def _fail(session: AsyncSession, job: MediaJob, reason: str) -> None:
    job.state, job.error = JobState.FAILED, reason[:500]
    job.lease_expires_at = None
    await session.execute(
        update(ProductMedia)
        .where(ProductMedia.id == job.media_id)
        .values(state=MediaState.FAILED, details={"error": job.error})
    )
    log.warning("media job %s failed: %s", job.id, reason)


@dataclass
class _Progress:
    percent: int = 0


async def _run_ladder(
    source: Path,
    output: Path,
    thumbnail_at: float | None,
    progress: _Progress,
    heartbeat: asyncio.Task[None],
) -> dict[str, Any]:
    """Run `python -m api.catalog.renditions` and follow its JSON lines; kill it if we stop."""
    args = [str(source), str(output)] + ([str(thumbnail_at)] if thumbnail_at is not None else [])
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api.catalog.renditions",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert child.stdout is not None
    last: dict[str, Any] = {}
    try:
        async for line in child.stdout:
            if heartbeat.done():
                heartbeat.result()  # a lost lease ends this try here
            last = json.loads(line)
            progress.percent = int(last.get("progress", progress.percent))
        status = await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    if "result" in last:
        return dict(last["result"])
    if "error" in last:
        raise JobFailed(str(last["error"]), retry=False)
    raise JobFailed(f"the video processor stopped unexpectedly (exit status {status})", retry=True)
