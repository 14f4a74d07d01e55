"""The SFU's worker processes: a node's viewers spread over every core.

Publishers stay in the node's main process (the origin: WHIP, recorder tap, lifecycle).
Viewers go to the least-loaded process, the main one included; a worker that gets the first
viewer of a room is sent the publisher's track formats and, from then on, a copy of every
packet (:mod:`sfu.relay`): one ``sendto`` per packet per worker, not per viewer. When a
worker's last viewer of a room leaves, the relay stops. A worker that dies takes its viewers
with it (they are reported gone, and their pages re-POST to the processes left); the others
carry on, and a new process takes the dead one's place (its index, so its slice of the port
range), after :data:`RESPAWN_DELAYS`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from .errors import (
    ClosedError,
    IceRestartUnsupportedError,
    NoMediaPortError,
    NotLiveError,
    SdpError,
    SfuError,
    UnsupportedMediaError,
)
from .events import EventSink, GoneReason, SubscriberGone
from .publisher import Publisher
from .relay import HEADER, PLI, RelayLink, RelaySource
from .room import Room, SfuSettings
from .stats import ConsumerStats, SessionStats

logger = logging.getLogger(__name__)

_ERRORS: dict[str, type[SfuError]] = {
    cls.__name__: cls
    for cls in (
        ClosedError,
        IceRestartUnsupportedError,
        NoMediaPortError,
        NotLiveError,
        SdpError,
        SfuError,
        UnsupportedMediaError,
    )
}
STOP_TIMEOUT = 5.0
START_TIMEOUT = 30.0
# Seconds before a dead worker is replaced: longer each time one dies within STABLE seconds
# of its start (a worker that cannot run must not be restarted in a tight loop).
RESPAWN_DELAYS = (0.5, 2.0, 8.0, 30.0)
STABLE = 60.0


class RemoteSubscriber:
    """A viewer session held by a worker process: WHEP PATCH and DELETE are passed on."""

    def __init__(self, worker: WorkerProcess, room_id: str, session_id: str) -> None:
        self.id = session_id
        self.room_id = room_id
        self._worker = worker

    @property
    def closed(self) -> bool:
        return self.id not in self._worker.sessions

    async def add_ice_candidates(self, fragment: str) -> None:
        await self._worker.call(
            {"op": "trickle", "room": self.room_id, "session": self.id, "fragment": fragment}
        )

    async def close(self, reason: GoneReason = GoneReason.CLOSED) -> None:
        with contextlib.suppress(ClosedError):
            await self._worker.call(
                {"op": "close_session", "room": self.room_id, "session": self.id}
            )


@dataclasses.dataclass
class _Relay:
    link: RelayLink
    source: Publisher | RelaySource


class WorkerProcess:
    """One child process (``python -m sfu.worker``) and what it holds for this node."""

    def __init__(
        self, index: int, process: asyncio.subprocess.Process, port: int, crashes: int = 0
    ) -> None:
        self.index = index
        self.process = process
        self.crashes = crashes  # predecessors at this index that died soon after their start
        self.started_at = asyncio.get_running_loop().time()
        self.address = ("127.0.0.1", port)
        self.alive = True
        self.sessions: dict[str, RemoteSubscriber] = {}
        self.relays: dict[str, _Relay] = {}
        self.lock = asyncio.Lock()  # relay set-up and tear-down of this worker
        self.joining: collections.Counter[str] = collections.Counter()  # offers in flight
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    def viewers(self, room_id: str | None = None) -> int:
        if room_id is None:
            return len(self.sessions)
        return sum(1 for s in self.sessions.values() if s.room_id == room_id)

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its reply; a worker's SfuError is raised here."""
        stdin = self.process.stdin
        if not self.alive or stdin is None:
            raise ClosedError(f"SFU worker {self.index} is gone")
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            stdin.write(json.dumps({"id": request_id, **request}).encode() + b"\n")
            await stdin.drain()
            reply = await future
        except (ConnectionError, BrokenPipeError):
            raise ClosedError(f"SFU worker {self.index} is gone") from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            raise _ERRORS.get(reply["error"], SfuError)(reply["message"])
        return dict(reply)

    def resolve(self, reply: dict[str, Any]) -> None:
        future = self._pending.get(reply["id"])
        if future is not None and not future.done():
            future.set_result(reply)

    def fail_pending(self) -> None:
        self.alive = False
        for future in self._pending.values():
            if not future.done():
                future.set_result({"error": "ClosedError", "message": "SFU worker exited"})


class WorkerPool(asyncio.DatagramProtocol):
    """The node's SFU worker processes, placement of viewers, and the relays feeding them.

    States: new -> started -> closed. ``room`` finds the origin room of a stream (for the
    workers' keyframe requests); ``events`` receives the workers' SubscriberGone.
    """

    def __init__(
        self, settings: SfuSettings, events: EventSink, room: Callable[[str], Room | None]
    ) -> None:
        self._settings = settings
        self._events = events
        self._room = room
        self.workers: list[WorkerProcess] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._channels: dict[int, str] = {}
        self._deferred: set[tuple[int, str]] = set()  # keyframe requests waiting for the limit
        self._channel_ids = itertools.count(1)
        self._readers: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._respawns: set[asyncio.Task[None]] = set()
        self._config: dict[str, Any] = {}

    async def start(self, count: int) -> None:
        """Start ``count`` worker processes and wait until each listens.

        Worker ``i`` is SFU process ``i + 1`` of the node: its ICE sockets bind in that slice
        of the port range, which must have been split over at least ``count + 1`` processes.
        """
        ports = self._settings.ports
        if ports.port_range is not None and ports.processes < count + 1:
            raise ValueError(
                f"the ICE port range is split over {ports.processes} SFU processes, "
                f"not the {count + 1} that {count} workers make"
            )
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        port = transport.get_extra_info("sockname")[1]
        settings = dataclasses.asdict(self._settings)
        level = logging.getLogger("sfu").getEffectiveLevel()
        self._config = {"settings": settings, "parent_port": port, "log_level": level}
        await asyncio.gather(*(self._start_worker(index) for index in range(count)))

    async def _start_worker(self, index: int, crashes: int = 0) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sfu.worker",
            json.dumps({**self._config, "process": index + 1}),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            ready = await asyncio.wait_for(_ready(process.stdout, process.pid), START_TIMEOUT)
        except BaseException:
            process.kill()  # never left running behind a start that failed or was called off
            await process.wait()
            raise
        worker = WorkerProcess(index, process, int(ready["port"]), crashes)
        self.workers.append(worker)
        reader = asyncio.ensure_future(self._read(worker))
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)
        logger.info("SFU worker %d started (pid %d)", index, process.pid)

    async def _respawn(self, dead: WorkerProcess) -> None:
        """Replace ``dead`` after a delay that grows while its successors keep dying young."""
        young = asyncio.get_running_loop().time() - dead.started_at < STABLE
        crashes = dead.crashes + 1 if young else 0
        await asyncio.sleep(RESPAWN_DELAYS[min(crashes, len(RESPAWN_DELAYS) - 1)])
        if self._transport is None:
            return
        with contextlib.suppress(ValueError):
            self.workers.remove(dead)
        try:
            await self._start_worker(dead.index, crashes)
        except (OSError, TimeoutError, ValueError):
            logger.exception("SFU worker %d could not be restarted", dead.index)
            return
        logger.warning("SFU worker %d replaced", dead.index)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """A worker's viewers need a keyframe: ask the origin's producer (rate-limited)."""
        if len(data) <= HEADER.size or not any(w.address == addr for w in self.workers):
            return
        channel, message = HEADER.unpack_from(data)
        room_id = self._channels.get(channel)
        if message != PLI or room_id is None:
            return
        room = self._room(room_id)
        kind = data[HEADER.size :].decode("ascii", "replace")
        source = room.source if room is not None else None
        producer = source.ingest.find(kind) if source is not None else None
        if producer is None or producer.request_keyframe() or (channel, kind) in self._deferred:
            return
        # Rate-limited: the worker's viewer arrived just after a keyframe went by. Ask again
        # when the interval allows, rather than leave it to the worker's 1 s retry.
        self._deferred.add((channel, kind))

        def ask() -> None:
            self._deferred.discard((channel, kind))
            producer.request_keyframe()

        asyncio.get_running_loop().call_later(self._settings.keyframe_interval, ask)

    def place(self, local_viewers: int) -> WorkerProcess | None:
        """The process for the next viewer: the least loaded (None: the main process)."""
        best: WorkerProcess | None = None
        load = local_viewers
        for worker in self.workers:
            if worker.alive and worker.viewers() <= load:
                best, load = worker, worker.viewers()
        return best

    def viewers(self, room_id: str | None = None) -> int:
        """Viewers in the worker processes: of one room, or of all."""
        return sum(worker.viewers(room_id) for worker in self.workers)

    async def subscriber_stats(self, room_id: str) -> list[SessionStats]:
        """Delivery stats of a room's viewers in the worker processes."""
        replies = await asyncio.gather(
            *(
                w.call({"op": "stats", "room": room_id})
                for w in self.workers
                if w.alive and room_id in w.relays
            ),
            return_exceptions=True,
        )
        return [
            SessionStats(
                session_id=s["session_id"],
                state=s["state"],
                tracks=[ConsumerStats(**t) for t in s["tracks"]],
            )
            for reply in replies
            if isinstance(reply, dict)
            for s in reply["subscribers"]
        ]

    async def subscribe(
        self, worker: WorkerProcess, room: Room, offer_sdp: str
    ) -> tuple[RemoteSubscriber, str]:
        """Answer a WHEP offer in ``worker``, relaying ``room``'s publisher there first."""
        async with worker.lock:
            await self._ensure_relay(worker, room)
            worker.joining[room.id] += 1
        try:
            reply = await worker.call({"op": "subscribe", "room": room.id, "offer": offer_sdp})
        except BaseException:
            self._spawn(self._drop_idle_relay(worker, room.id))
            raise
        finally:
            worker.joining[room.id] -= 1
        session = RemoteSubscriber(worker, room.id, reply["session"])
        worker.sessions[session.id] = session
        return session, str(reply["answer"])

    def session(self, room_id: str, session_id: str) -> RemoteSubscriber | None:
        for worker in self.workers:
            session = worker.sessions.get(session_id)
            if session is not None and session.room_id == room_id:
                return session
        return None

    async def _ensure_relay(self, worker: WorkerProcess, room: Room) -> None:
        source = room.source
        if source is None:
            raise NotLiveError(f"room {room.id!r} has no publisher")
        relay = worker.relays.get(room.id)
        if relay is not None and relay.source is source:
            return
        if relay is not None:
            relay.source.ingest.remove_relay(relay.link)
            self._channels.pop(relay.link.channel, None)
        channel = next(self._channel_ids)
        tracks = [dataclasses.asdict(track) for track in source.ingest.tracks()]
        await worker.call({"op": "relay", "room": room.id, "channel": channel, "tracks": tracks})
        link = RelayLink(channel, self._sender(worker))
        self._channels[channel] = room.id
        worker.relays[room.id] = _Relay(link, source)
        for producer in source.ingest.every():
            if producer.kind == "video":
                link.replay_keyframe(producer)
        source.ingest.add_relay(link)

    def _sender(self, worker: WorkerProcess) -> Callable[[bytes], None]:
        transport, address = self._transport, worker.address
        assert transport is not None

        def send(data: bytes) -> None:
            transport.sendto(data, address)

        return send

    def publisher_changed(self, room: Room, publisher: Publisher) -> None:
        """A new publisher took over ``room``: re-point the workers' relays to it."""
        for worker in self.workers:
            if room.id in worker.relays:
                self._spawn(self._repoint(worker, room))

    async def _repoint(self, worker: WorkerProcess, room: Room) -> None:
        async with worker.lock:
            if room.id in worker.relays:
                with contextlib.suppress(SfuError):
                    await self._ensure_relay(worker, room)

    async def close_room(self, room_id: str) -> None:
        """The stream ended: the workers close its viewers (they report them gone)."""
        await asyncio.gather(
            *(self._drop_relay(w, room_id) for w in self.workers if room_id in w.relays)
        )

    async def _drop_relay(self, worker: WorkerProcess, room_id: str, idle: bool = False) -> None:
        async with worker.lock:
            if idle and (worker.viewers(room_id) or worker.joining[room_id]):
                return
            relay = worker.relays.pop(room_id, None)
            if relay is None:
                return
            relay.source.ingest.remove_relay(relay.link)
            self._channels.pop(relay.link.channel, None)
            with contextlib.suppress(ClosedError):
                await worker.call({"op": "close_room", "room": room_id})

    async def _read(self, worker: WorkerProcess) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                message = json.loads(line)
                if "id" in message:
                    worker.resolve(message)
                elif message.get("event") == "gone":
                    self._gone(worker, message["room"], message["session"], message["reason"])
                elif message.get("event") == "log":
                    _log(message, worker.process.pid)
        finally:
            self._worker_exited(worker)

    def _gone(self, worker: WorkerProcess, room_id: str, session_id: str, reason: str) -> None:
        if worker.sessions.pop(session_id, None) is None:
            return
        self._events(SubscriberGone(room_id, session_id, GoneReason(reason)))
        if worker.alive and worker.viewers(room_id) == 0 and room_id in worker.relays:
            self._spawn(self._drop_idle_relay(worker, room_id))

    async def _drop_idle_relay(self, worker: WorkerProcess, room_id: str) -> None:
        if worker.viewers(room_id) == 0 and not worker.joining[room_id]:
            await self._drop_relay(worker, room_id, idle=True)

    def _worker_exited(self, worker: WorkerProcess) -> None:
        worker.fail_pending()
        for relay in worker.relays.values():
            relay.source.ingest.remove_relay(relay.link)
            self._channels.pop(relay.link.channel, None)
        worker.relays.clear()
        sessions, worker.sessions = list(worker.sessions.values()), {}
        for session in sessions:
            self._events(SubscriberGone(session.room_id, session.id, GoneReason.CONNECTION_FAILED))
        if self._transport is not None:
            logger.warning("SFU worker %d exited; %d viewers lost", worker.index, len(sessions))
            task = asyncio.ensure_future(self._respawn(worker))
            self._respawns.add(task)
            task.add_done_callback(self._respawns.discard)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop every worker (its viewers are closed) and the pipe. Idempotent."""
        transport, self._transport = self._transport, None
        for task in self._respawns:
            task.cancel()
        if self._respawns:
            await asyncio.gather(*self._respawns, return_exceptions=True)
        for worker in self.workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if transport is not None:
            transport.close()


async def _ready(stdout: asyncio.StreamReader, pid: int) -> dict[str, Any]:
    """A starting worker's first reply (``ready``); what it logs before that is logged here."""
    while (message := json.loads(await stdout.readline())).get("event") == "log":
        _log(message, pid)
    return dict(message)


def _log(message: dict[str, Any], pid: int) -> None:
    """A worker's log record, logged as this process's own under the worker's logger name."""
    source = logging.getLogger(message["logger"])
    source.log(message["level"], "%s", message["text"], extra={"worker_pid": pid})
