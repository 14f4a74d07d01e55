"""A show's life on this node: its media in the SFU, its supervision and its recording.

``LiveNode`` builds the SFU with the supervisor as its event sink, records what publishers
send, acts on the bus messages about the shows it carries (a show ended on any node, a product
cue), keeps this node's registry claims fresh, adopts the shows of nodes that died and reports
its WebRTC viewers to the shared counters (``live.audience``).

States: new -> running (``start``) -> closed (``close``: media first, then the recordings,
then the claims). The control side reaches it through ``ShowStates`` and ``Replays``; nothing
here knows HTTP, SQL or Socket.IO.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from live.audience import WebRtcAudience
from live.messages import CueAdded, StatusChanged
from live.recordings import Recordings, Replays
from live.supervisor import ShowStates, StreamSupervisor
from recorder import RecorderConfig
from sfu import Sfu, SfuSettings
from twins.bus import Bus
from twins.counters import Counters
from twins.objectstore import ObjectStore
from twins.periodic import Periodic
from twins.registry import HEARTBEAT_SECONDS, StreamRegistry


@dataclass(frozen=True)
class LiveSettings:
    sfu: SfuSettings
    grace_seconds: float  # a reconnecting show waits this long for its publisher
    workers: int  # SFU worker processes besides this one
    recordings: Path  # recordings in progress, until uploaded
    recorder: RecorderConfig  # timing and the DVR window of each recording
    ladder: bool = False  # a rendition per simulcast layer (live/recordings.py)


class LiveNode:
    def __init__(
        self,
        settings: LiveSettings,
        *,
        states: ShowStates,
        replays: Replays,
        store: ObjectStore,
        registry: StreamRegistry,
        bus: Bus,
        counters: Counters,
        node: str,
    ) -> None:
        self._settings = settings
        self._states = states
        self.registry = registry
        self.supervisor = StreamSupervisor(
            states,
            close_media=self.end_media,
            grace_seconds=settings.grace_seconds,
            media_started=self._media_started,
        )
        self.sfu = Sfu(settings.sfu, events=self.supervisor.on_event)
        self.recordings = Recordings(
            self.sfu, replays, store, settings.recordings, settings.recorder, ladder=settings.ladder
        )
        self.audience = WebRtcAudience(self.sfu, counters, node)
        self._beating = Periodic(self._heartbeat, HEARTBEAT_SECONDS)
        bus.subscribe(StatusChanged, self._on_status)
        bus.subscribe(CueAdded, self._on_cue)

    async def start(self) -> None:
        await self.sfu.start_workers(self._settings.workers)
        await self.recordings.recover(self._cut_short)
        await self.registry.heartbeat([])  # this node's address is known before its first claim
        self._beating.start()
        self.audience.start()

    async def close(self) -> None:
        await self._beating.stop()
        await self.audience.close()
        # Media first: closing it emits the last events, whose status updates then finish.
        carried = self.sfu.published_rooms()
        await self.sfu.close()
        await self.supervisor.close()
        # A show this node carried cannot go on without it: its recording is published and
        # the show marked interrupted, as after a crash.
        for stream_id in {*carried, *await self.recordings.close()}:
            await self._states.interrupted(stream_id)
            await self.registry.release(stream_id)

    async def _cut_short(self, stream_id: str) -> None:
        """Its recording shows the show died with this node: interrupted, unless its publisher
        came back on another node meanwhile (the show goes on there)."""
        if await self.registry.owner(stream_id) is None:
            await self._states.interrupted(stream_id)

    async def end_media(self, stream_id: str) -> None:
        await self.sfu.close_room(stream_id)
        await self.registry.release(stream_id)

    async def _media_started(self, stream_id: str) -> None:
        await self.recordings.media_started(stream_id)

    async def _heartbeat(self) -> None:
        """Keep this node's streams its own; adopt the live streams of nodes that died."""
        await self.registry.heartbeat(self.sfu.origin_rooms())
        orphans = await self.registry.orphans(await self._states.running())
        await self.supervisor.adopt(orphans)

    async def _on_status(self, message: StatusChanged) -> None:
        # Whichever node ended the show, the node carrying its media acts.
        if message.finished:
            self.recordings.stream_finished(message.stream_id)
            await self.end_media(message.stream_id)

    async def _on_cue(self, message: CueAdded) -> None:
        self.recordings.add_cue(message.stream_id, message.to_cue())
