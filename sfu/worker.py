"""An SFU worker process: viewers of relayed rooms, driven by its parent over stdin/stdout.

    python -m sfu.worker '{"settings": {...}, "parent_port": 40000, "process": 1, "log_level": 30}'

The parent (:class:`sfu.pool.WorkerPool`) writes one JSON request per line on stdin and reads
one JSON line per reply or event on stdout; media arrives on a loopback UDP socket whose port
is the first line written (``{"event": "ready", "port": N}``). Stdin closing ends the worker:
its viewers are closed and it exits. Log records go up the same pipe (``{"event": "log"}``),
so the parent's handlers format them with its own lines. ``process`` is the worker's index
among the node's SFU processes (the main one is 0): its ICE sockets bind in that slice of the
node's port range (:mod:`sfu.ports`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from . import native
from .aiortc_hooks import allow_h264_profiles, check_aiortc_version
from .candidates import IceSettings, install_host_address_hook
from .errors import SfuError
from .events import SfuEvent, SubscriberGone
from .ports import MediaPorts, PortRange, PortSettings, serving_media_ports
from .producer import TrackSpec
from .publisher import INGEST_RECEIVE_BUFFER
from .relay import HEADER, RTP, SENDER_REPORT, SR, RelaySource, keyframe_request
from .room import Room, SfuSettings
from .session import Session

logger = logging.getLogger("sfu.worker")

Reply = dict[str, Any]


def settings_from_json(data: dict[str, Any]) -> SfuSettings:
    """The parent's ``dataclasses.asdict(SfuSettings)``, back into settings."""
    ice = data.pop("ice")
    ports = data.pop("ports")
    hosts = ice["host_addresses"]
    port_range = ports["port_range"]
    return SfuSettings(
        ice=IceSettings(
            host_addresses=tuple(hosts) if hosts is not None else None,
            announced_address=ice["announced_address"],
        ),
        ports=PortSettings(
            port_range=PortRange(**port_range) if port_range is not None else None,
            processes=ports["processes"],
            udp_mux=ports["udp_mux"],
        ),
        **data,
    )


class Worker(asyncio.DatagramProtocol):
    """The rooms of one worker process, each fed by a relay of the parent's publisher."""

    def __init__(
        self, settings: SfuSettings, parent: tuple[str, int], emit: Callable[[Reply], None]
    ):
        self._settings = settings
        native.configure(settings.native)
        self._parent = parent
        self._emit = emit
        self._rooms: dict[str, Room] = {}
        self._channels: dict[int, RelaySource] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self._ops: dict[str, Callable[[dict[str, Any]], Awaitable[Reply]]] = {
            "relay": self._relay,
            "subscribe": self._subscribe,
            "trickle": self._trickle,
            "close_session": self._close_session,
            "close_room": self._close_room,
            "stats": self._stats,
        }

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) <= HEADER.size or addr != self._parent:
            return
        channel, kind = HEADER.unpack_from(data)
        source = self._channels.get(channel)
        if source is None:
            return
        if kind == RTP:
            source.ingest.rtp(data[HEADER.size :])
        elif kind == SR and len(data) == HEADER.size + SENDER_REPORT.size:
            source.ingest.sender_report(*SENDER_REPORT.unpack_from(data, HEADER.size))

    async def handle(self, request: dict[str, Any]) -> Reply:
        try:
            return await self._ops[request["op"]](request)
        except SfuError as exc:
            return {"error": type(exc).__name__, "message": str(exc)}

    def _events(self, event: SfuEvent) -> None:
        if isinstance(event, SubscriberGone):
            self._emit(
                {
                    "event": "gone",
                    "room": event.room_id,
                    "session": event.session_id,
                    "reason": event.reason.value,
                }
            )

    def _room(self, room_id: str) -> Room:
        room = self._rooms.get(room_id)
        if room is None or room.closed:
            room = self._rooms[room_id] = Room(room_id, self._settings, self._events)
        return room

    async def _relay(self, request: dict[str, Any]) -> Reply:
        channel = int(request["channel"])
        room = self._room(request["room"])
        tracks = [TrackSpec(**track) for track in request["tracks"]]

        def ask(kind: str) -> None:
            if self.transport is not None:
                self.transport.sendto(keyframe_request(channel, kind), self._parent)

        old = room.source
        source = await room.relay(tracks, ask)
        self._channels = {c: s for c, s in self._channels.items() if s is not old}
        self._channels[channel] = source
        return {"ok": True}

    async def _subscribe(self, request: dict[str, Any]) -> Reply:
        subscriber, answer = await self._room(request["room"]).subscribe(request["offer"])
        return {"session": subscriber.id, "answer": answer}

    def _session(self, request: dict[str, Any]) -> Session | None:
        room = self._rooms.get(request["room"])
        return room.session(request["session"]) if room is not None else None

    async def _trickle(self, request: dict[str, Any]) -> Reply:
        session = self._session(request)
        if session is None:
            return {"error": "ClosedError", "message": "no such session"}
        await session.add_ice_candidates(request["fragment"])
        return {"ok": True}

    async def _close_session(self, request: dict[str, Any]) -> Reply:
        session = self._session(request)
        if session is not None:
            await session.close()
        return {"ok": True}

    async def _stats(self, request: dict[str, Any]) -> Reply:
        room = self._rooms.get(request["room"])
        subscribers = room.subscribers if room is not None else ()
        return {"subscribers": [dataclasses.asdict(s.stats()) for s in subscribers]}

    async def _close_room(self, request: dict[str, Any]) -> Reply:
        room = self._rooms.pop(request["room"], None)
        if room is not None:
            source = room.source
            self._channels = {c: s for c, s in self._channels.items() if s is not source}
            await room.close()
        return {"ok": True}

    async def close(self) -> None:
        rooms, self._rooms = list(self._rooms.values()), {}
        await asyncio.gather(*(room.close() for room in rooms))
        if self.transport is not None:
            self.transport.close()


def _write(message: Reply) -> None:
    os.write(sys.stdout.fileno(), json.dumps(message).encode() + b"\n")


async def serve(config: dict[str, Any]) -> None:
    check_aiortc_version()
    allow_h264_profiles()
    install_host_address_hook()
    settings = settings_from_json(config["settings"])
    parent = ("127.0.0.1", int(config["parent_port"]))
    ports = MediaPorts.for_process(settings.ports, int(config["process"]))
    async with serving_media_ports(ports):
        logger.info("SFU worker %d serving; ICE sockets: %s", config["process"], ports or "any")
        await _serve(settings, parent)


async def _serve(settings: SfuSettings, parent: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(settings, parent, _write)
    transport, _ = await loop.create_datagram_endpoint(lambda: worker, local_addr=("127.0.0.1", 0))
    worker.transport = transport
    # Like a publisher's ingest socket: hold a keyframe's burst while the loop fans out.
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, INGEST_RECEIVE_BUFFER)
    _write({"event": "ready", "port": transport.get_extra_info("sockname")[1]})
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(request: dict[str, Any]) -> None:
        reply = await worker.handle(request)
        _write({"id": request["id"], **reply})

    try:
        while line := await reader.readline():
            task = asyncio.ensure_future(answer(json.loads(line)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        await worker.close()
        for task in tasks:
            task.cancel()


class _ToParent(logging.Handler):
    """Writes each record on the control pipe, for the parent to log as its own."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))  # with its traceback, if any

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            _write({"event": "log", "logger": record.name, "level": record.levelno, "text": text})
        except Exception:
            self.handleError(record)


def main() -> None:
    config = json.loads(sys.argv[1])
    logging.basicConfig(level=config["log_level"], handlers=[_ToParent()])
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
