"""The Redis bus on the shared Redis: replay after a cut, once and in order, on a bounded stream."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from live.messages import StatusChanged
from tests.conftest import eventually
from twins.bus import Message, RedisBus
from twins.redislink import RedisLink

pytestmark = pytest.mark.timeout(60)

REDIS = ("127.0.0.1", 6379)


@dataclass(frozen=True)
class Said(Message, kind="test.said"):
    n: int


class Cable:
    """A TCP relay to Redis that a test can cut (closing every connection, refusing new ones)
    and mend, as a node's network link would fail."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def mend(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._pipes):
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*REDIS)
        self._pipes |= {writer, up_writer}
        await asyncio.gather(
            _pump(reader, up_writer), _pump(up_reader, writer), return_exceptions=True
        )
        self._pipes -= {writer, up_writer}


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture
def stream() -> str:
    return f"test:bus:{uuid.uuid4().hex}"


@pytest.fixture
async def links(stream: str) -> AsyncIterator[Callable[[str], RedisLink]]:
    opened: list[RedisLink] = []

    def open_link(url: str) -> RedisLink:
        opened.append(RedisLink(url))
        return opened[-1]

    yield open_link
    cleaner = open_link("redis://127.0.0.1:6379/0")
    await cleaner.client.delete(stream)
    for link in opened:
        await link.close()


def _heard(bus: RedisBus) -> list[Message]:
    heard: list[Message] = []

    async def hear(message: Message) -> None:
        heard.append(message)

    bus.subscribe(StatusChanged, hear)
    bus.subscribe(Said, hear)
    return heard


async def test_a_node_cut_off_gets_what_it_missed_once_and_in_order(
    stream: str, links: Callable[[str], RedisLink]
) -> None:
    cable = Cable()
    await cable.mend()
    a = RedisBus(links("redis://127.0.0.1:6379/0"), "a", stream=stream)
    b = RedisBus(links(f"redis://127.0.0.1:{cable.port}/0"), "b", stream=stream)
    heard = _heard(b)
    await a.start()
    await b.start()
    try:
        await a.publish(Said(0))
        await eventually(lambda: heard == [Said(0)], 20, lambda: f"heard {heard}")

        await cable.cut()
        missed = [StatusChanged("s1", "ended"), Said(1), StatusChanged("s2", "ended")]
        for message in missed:
            await a.publish(message)
        await asyncio.sleep(1.5)  # b keeps trying while it is cut off
        assert heard == [Said(0)]

        await cable.mend()
        await eventually(lambda: len(heard) >= 4, 20, lambda: f"heard {heard}")
        await a.publish(Said(2))
        await eventually(lambda: len(heard) >= 5, 20, lambda: f"heard {heard}")
        assert heard == [Said(0), *missed, Said(2)]
    finally:
        await a.close()
        await b.close()
        with contextlib.suppress(AssertionError):
            await cable.cut()


async def test_killed_connections_lose_and_repeat_nothing(
    stream: str, links: Callable[[str], RedisLink]
) -> None:
    name = f"bus-{uuid.uuid4().hex[:8]}"
    a = RedisBus(links("redis://127.0.0.1:6379/0"), "a", stream=stream)
    b_link = links(f"redis://127.0.0.1:6379/0?client_name={name}")
    b = RedisBus(b_link, "b", stream=stream)
    heard = _heard(b)
    await a.start()
    await b.start()
    admin = links("redis://127.0.0.1:6379/0")
    try:
        for n in range(60):
            await a.publish(Said(n))
            if n % 10 == 5:
                for client in await admin.client.client_list():
                    if client["name"] == name:
                        await admin.client.client_kill_filter(_id=client["id"])
        await eventually(lambda: len(heard) >= 60, 20, lambda: f"heard {heard}")
        await asyncio.sleep(0.5)
        assert heard == [Said(n) for n in range(60)]
    finally:
        await a.close()
        await b.close()


async def test_a_publisher_cut_off_sends_its_messages_once_back(
    stream: str, links: Callable[[str], RedisLink]
) -> None:
    cable = Cable()
    await cable.mend()
    a = RedisBus(links(f"redis://127.0.0.1:{cable.port}/0"), "a", stream=stream)
    b = RedisBus(links("redis://127.0.0.1:6379/0"), "b", stream=stream)
    here = _heard(a)
    there = _heard(b)
    await a.start()
    await b.start()
    try:
        await cable.cut()
        await a.publish(StatusChanged("s1", "ended"))
        assert here == [StatusChanged("s1", "ended")]  # this node's own handlers at once
        await cable.mend()
        await eventually(lambda: len(there) >= 1, 20, lambda: f"heard {there}")
        await asyncio.sleep(1.0)
        assert there == [StatusChanged("s1", "ended")]
        assert here == [StatusChanged("s1", "ended")]  # its own entry is not delivered again
    finally:
        await a.close()
        await b.close()
        with contextlib.suppress(AssertionError):
            await cable.cut()


async def test_the_stream_stays_bounded(stream: str, links: Callable[[str], RedisLink]) -> None:
    link = links("redis://127.0.0.1:6379/0")
    bus = RedisBus(link, "a", stream=stream, retention=200)
    await bus.start()
    try:
        for n in range(1_000):
            await bus.publish(Said(n))
        # Trimming is approximate: whole radix-tree nodes (100 entries by default) go at once.
        assert 200 <= await link.client.xlen(stream) <= 300
    finally:
        await bus.close()
