"""Uploading finished recordings to object storage, surviving restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .tally import RecordingTally

log = logging.getLogger(__name__)

JOURNAL = "uploads.jsonl"
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
}


class UploadTarget(Protocol):
    """The part of `twins.objectstore.ObjectStore` the queue needs (kept here: no server import)."""

    async def put_file(self, key: str, path: Path, content_type: str) -> None: ...

    async def size(self, key: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Upload:
    name: str  # file name inside the recording directory
    key: str  # object key


def _order(name: str) -> int:
    # Media before playlists: a playlist in the bucket never names a missing object.
    return 1 if name.endswith(".m3u8") else 0


class UploadQueue:
    """Uploads files of one recording directory, then deletes each local copy.

    States: idle -> running (`start()`) -> closed (`close()`). Every accepted file is
    first written to a journal (`uploads.jsonl`, JSON lines) in the directory, and marked
    done there only after the store reports the object with the local file's size; only
    then is the local file deleted. A new queue over the same directory resumes whatever
    the journal still lists. Failures are retried with exponential backoff, forever:
    a recording is never given up on (`attempts` counts them for monitoring).
    """

    def __init__(
        self,
        directory: Path,
        store: UploadTarget,
        *,
        prefix: str,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
        delete_local: bool = True,
        tally: RecordingTally | None = None,
    ) -> None:
        self.directory = directory
        self._tally = tally or RecordingTally()
        self._store = store
        self._prefix = prefix.strip("/")
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._delete_local = delete_local
        self._journal = directory / JOURNAL
        self._pending: list[Upload] = self._load()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.attempts = 0
        self.failures = 0
        self.uploaded: list[str] = []
        self.closed = False
        self._update_idle()

    @property
    def pending(self) -> list[str]:
        return [upload.name for upload in self._pending]

    def _load(self) -> list[Upload]:
        """Replay the journal: files added and not yet marked done, in order."""
        if not self._journal.exists():
            return []
        pending: dict[str, Upload] = {}
        for line in self._journal.read_text().splitlines():
            try:
                entry = json.loads(line)
                name, key = str(entry["name"]), str(entry["key"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
            if entry.get("done"):
                pending.pop(name, None)
            else:
                pending[name] = Upload(name, key)
        return sorted(pending.values(), key=lambda upload: _order(upload.name))

    async def add(self, names: list[str]) -> None:
        """Accept files (names relative to the directory) for upload; journaled first."""
        known = {upload.name for upload in self._pending}
        fresh = [Upload(name, f"{self._prefix}/{name}") for name in names if name not in known]
        if not fresh:
            return
        lines = "".join(json.dumps({"name": u.name, "key": u.key}) + "\n" for u in fresh)
        await asyncio.to_thread(self._append, lines)
        self._pending.extend(fresh)
        self._pending.sort(key=lambda upload: _order(upload.name))
        self._update_idle()
        self._wakeup.set()

    def _append(self, text: str) -> None:
        with open(self._journal, "a") as journal:
            journal.write(text)
            journal.flush()

    def start(self) -> None:
        if self._task is None and not self.closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def drain(self) -> None:
        """Wait until nothing is pending (wrap in asyncio.timeout to bound it)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop uploading (idempotent); the journal keeps what is left for the next start."""
        self.closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self.closed:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            upload = self._pending[0]
            if await self._upload_with_retries(upload):
                self._pending.remove(upload)
                self.uploaded.append(upload.name)
                self._update_idle()

    async def _upload_with_retries(self, upload: Upload) -> bool:
        attempt = 0
        while not self.closed:
            self.attempts += 1
            try:
                return await self._upload(upload)
            except Exception as error:
                self.failures += 1
                self._tally.upload_failures += 1
                delay = min(self._retry_max, self._retry_base * 2**attempt)
                delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
                log.warning("upload of %s failed (%s); retry in %.1fs", upload.key, error, delay)
                attempt += 1
                await asyncio.sleep(delay)
        return False

    async def _upload(self, upload: Upload) -> bool:
        path = self.directory / upload.name
        local = await asyncio.to_thread(_size, path)
        if local is None:
            # Uploaded and deleted before a crash let us journal it; or lost. Ask the store.
            if await self._store.size(upload.key) is None:
                log.error("upload of %s: local file is gone and the store lacks it", upload.key)
            await asyncio.to_thread(self._append, _done(upload))
            return True
        suffix = path.suffix.lower()
        content_type = CONTENT_TYPES.get(suffix, "application/octet-stream")
        started = time.perf_counter()
        await self._store.put_file(upload.key, path, content_type)
        remote = await self._store.size(upload.key)
        if remote != local:
            raise OSError(f"size mismatch after upload: local {local}, stored {remote}")
        self._tally.uploaded(local, time.perf_counter() - started)
        await asyncio.to_thread(self._append, _done(upload))
        if self._delete_local:
            await asyncio.to_thread(path.unlink, True)
        return True

    def _update_idle(self) -> None:
        if self._pending:
            self._idle.clear()
        else:
            self._idle.set()


def _done(upload: Upload) -> str:
    return json.dumps({"name": upload.name, "key": upload.key, "done": True}) + "\n"


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None
