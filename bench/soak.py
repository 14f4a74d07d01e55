"""Soak: hours of show and viewer churn compressed into minutes, against a real Shopcast node.

    python -m bench.soak --minutes 3 --shows 2

A node runs as a subprocess on loopback (SQLite, two SFU processes: itself and a worker).
Shows start, one after another, ``--shows`` at a time: a seller's show goes live, a WHIP
publisher (``PublisherPeer``) sends synthetic video and audio, WHEP viewers (``ViewerPeer``)
and Socket.IO viewers join and leave while it runs, chatting and reacting, and the show ends
after ``--show-seconds``. Every ``--interval`` seconds a line gives the node's resident memory
and open file descriptors (its own, and with its SFU worker processes); at the end, their
slopes per minute and per show, over the run after its first interval and over its second
half alone (the figures). A flat second half is the goal: what a show adds, its end takes
away. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import socketio

from bench import emit
from bench.chat import register, start_node, wait_healthy
from peers.webrtc import PublisherPeer, ViewerPeer

SDP = {"Content-Type": "application/sdp"}
HEART = "\u2764\ufe0f"
PAGE = 4096


@dataclass
class Tally:
    shows: int = 0
    webrtc_joins: int = 0
    socket_joins: int = 0
    chat_lines: int = 0
    reactions: int = 0
    refusals: int = 0


@dataclass
class Sample:
    seconds: float
    shows: int
    rss_mb: float
    rss_all_mb: float
    fds: int
    fds_all: int


def _rss_mb(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * PAGE / 1e6


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _children(pid: int) -> list[int]:
    """The node's child processes (its SFU workers), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found.append(int(entry))
    return found


def sample(pid: int, started: float, tally: Tally) -> Sample:
    rss, fds = _rss_mb(pid), _fds(pid)
    rss_all, fds_all = rss, fds
    for child in _children(pid):
        with contextlib.suppress(OSError):
            rss_all += _rss_mb(child)
            fds_all += _fds(child)
    return Sample(time.monotonic() - started, tally.shows, rss, rss_all, fds, fds_all)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two points)."""
    return statistics.linear_regression(xs, ys).slope if len(set(xs)) > 1 else 0.0


@dataclass
class Show:
    """One show's life: live, published, watched by a churning audience, ended."""

    http: aiohttp.ClientSession
    url: str
    seller: dict[str, str]
    buyers: list[str]
    args: argparse.Namespace
    tally: Tally
    rng: random.Random
    peers: list[tuple[ViewerPeer, str]] = field(default_factory=list)
    sockets: list[socketio.AsyncClient] = field(default_factory=list)

    async def run(self) -> None:
        async with self.http.post(
            f"{self.url}/api/v1/streams", json={"title": "soak"}, headers=self.seller
        ) as response:
            sid = (await response.json())["id"]
        async with self.http.post(
            f"{self.url}/api/v1/streams/{sid}/go-live", headers=self.seller
        ) as response:
            live = await response.json()
        publisher = PublisherPeer()
        whip = {**SDP, "Authorization": f"Bearer {live['publish_token']}"}
        async with self.http.post(
            live["whip_url"], data=await publisher.offer(), headers=whip
        ) as response:
            answer, session = await response.text(), response.headers["Location"]
        await publisher.accept(answer)
        try:
            deadline = time.monotonic() + self.args.show_seconds
            while time.monotonic() < deadline:
                await self._churn(sid)
                await asyncio.sleep(1.0)
        finally:
            await self._end(sid, publisher, session, whip)

    async def _churn(self, sid: str) -> None:
        """One second of the show: someone joins or leaves, someone talks, someone reacts."""
        if len(self.peers) < self.args.webrtc and self.rng.random() < 0.6:
            await self._watch(sid)
        elif self.peers and self.rng.random() < 0.3:
            await self._unwatch(*self.peers.pop(self.rng.randrange(len(self.peers))))
        if len(self.sockets) < self.args.sockets and self.rng.random() < 0.7:
            await self._join(sid)
        elif self.sockets and self.rng.random() < 0.3:
            await self.sockets.pop(self.rng.randrange(len(self.sockets))).disconnect()
        for client in self.rng.sample(self.sockets, min(2, len(self.sockets))):
            line = await client.call("stream:chat", {"stream_id": sid, "text": "how much?"})
            react = await client.call("stream:reaction", {"stream_id": sid, "emoji": HEART})
            self.tally.chat_lines += bool(line.get("ok"))
            self.tally.reactions += bool(react.get("ok"))
            self.tally.refusals += (not line.get("ok")) + (not react.get("ok"))

    async def _watch(self, sid: str) -> None:
        peer = ViewerPeer(record=False)
        async with self.http.post(
            f"{self.url}/whep/{sid}", data=await peer.offer(), headers=SDP
        ) as response:
            if response.status != 201:  # 409 until the publisher's media arrives
                await peer.close()
                return
            answer, location = await response.text(), response.headers["Location"]
        await peer.accept(answer)
        self.peers.append((peer, location))
        self.tally.webrtc_joins += 1

    async def _unwatch(self, peer: ViewerPeer, location: str) -> None:
        async with self.http.delete(urljoin(self.url, location)):
            pass
        await peer.close()

    async def _join(self, sid: str) -> None:
        client = socketio.AsyncClient(reconnection=False)
        token = self.rng.choice(self.buyers)
        try:
            await client.connect(self.url, transports=["websocket"], auth={"token": token})
        except socketio.exceptions.ConnectionError:  # a loaded node timed out: counted, go on
            self.tally.refusals += 1
            return
        await client.call("stream:join", {"stream_id": sid})
        self.sockets.append(client)
        self.tally.socket_joins += 1

    async def _end(self, sid: str, publisher: PublisherPeer, session: str, whip: Any) -> None:
        async with self.http.post(
            f"{self.url}/api/v1/streams/{sid}/end", headers=self.seller
        ) as response:
            await response.read()
        async with self.http.delete(urljoin(self.url, session), headers=whip):
            pass
        await publisher.close()
        for peer, location in self.peers:
            await self._unwatch(peer, location)
        for client in self.sockets:
            await client.disconnect()
        self.peers, self.sockets = [], []
        self.tally.shows += 1


async def churn(url: str, args: argparse.Namespace, tally: Tally, until: float) -> None:
    """``args.shows`` shows at a time, each followed by the next, until ``until`` (the shows
    running then end as planned)."""
    async with aiohttp.ClientSession() as http:
        seller = {"Authorization": f"Bearer {await register(http, url, 'seller')}"}
        buyers = [await register(http, url, "viewer") for _ in range(args.sockets)]

        rng = random.Random(args.seed)  # noqa: S311 - the same churn in every run

        async def lane() -> None:
            while time.monotonic() < until:
                await Show(http, url, seller, buyers, args, tally, rng).run()

        await asyncio.gather(*(lane() for _ in range(args.shows)))


async def watch(pid: int, interval: float, tally: Tally, done: asyncio.Event) -> list[Sample]:
    """A sample every ``interval`` seconds, and one when the churn is ``done``."""
    started = time.monotonic()
    print("    t  shows   rss MB  (+workers)   fds  (+workers)", flush=True)
    samples: list[Sample] = []
    while not samples or not done.is_set():
        if samples:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), interval)
        samples.append(s := sample(pid, started, tally))
        print(
            f"{s.seconds:5.0f}  {s.shows:5d}  {s.rss_mb:7.1f}  ({s.rss_all_mb:7.1f})"
            f"  {s.fds:4d}  ({s.fds_all:4d})",
            flush=True,
        )
    return samples


@dataclass(frozen=True)
class Trend:
    rss_mb_per_min: float
    rss_mb_per_show: float
    fds_per_min: float
    fds_per_show: float

    @staticmethod
    def of(samples: list[Sample]) -> Trend:
        minutes = [s.seconds / 60 for s in samples]
        shows = [float(s.shows) for s in samples]
        rss = [s.rss_all_mb for s in samples]
        fds = [float(s.fds_all) for s in samples]
        return Trend(slope(minutes, rss), slope(shows, rss), slope(minutes, fds), slope(shows, fds))

    def __str__(self) -> str:
        return (
            f"RSS {self.rss_mb_per_min:+.2f} MB/min ({self.rss_mb_per_show:+.3f} MB per show), "
            f"fds {self.fds_per_min:+.2f}/min ({self.fds_per_show:+.3f} per show)"
        )


def report(samples: list[Sample], tally: Tally) -> None:
    """Slopes after the first interval (allocations of first use included), and over the
    second half alone: a leak keeps its slope, a warm-up flattens out."""
    settled = samples[1:] if len(samples) > 2 else samples
    late = settled[len(settled) // 2 :] if len(settled) > 3 else settled
    after_warm_up, second_half = Trend.of(settled), Trend.of(late)
    print(
        f"{tally.shows} shows, {tally.webrtc_joins} WHEP and {tally.socket_joins} Socket.IO "
        f"joins, {tally.chat_lines} chat lines, {tally.reactions} reactions "
        f"({tally.refusals} refused or failed)\n"
        f"slope after the first interval: {after_warm_up}\n"
        f"slope over the second half ({late[0].seconds:.0f}-{late[-1].seconds:.0f} s): "
        f"{second_half}",
        flush=True,
    )
    emit(
        shows=tally.shows,
        webrtc_joins=tally.webrtc_joins,
        socket_joins=tally.socket_joins,
        rss_start_mb=round(settled[0].rss_all_mb, 1),
        rss_end_mb=round(settled[-1].rss_all_mb, 1),
        rss_mb_per_min=round(second_half.rss_mb_per_min, 3),
        rss_mb_per_show=round(second_half.rss_mb_per_show, 4),
        rss_mb_per_min_after_warm_up=round(after_warm_up.rss_mb_per_min, 3),
        fds_start=settled[0].fds_all,
        fds_end=settled[-1].fds_all,
        fds_per_min=round(second_half.fds_per_min, 3),
        fds_per_show=round(second_half.fds_per_show, 4),
    )


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="shopcast-soak-") as data:
        node, url = start_node(
            Path(data),
            SHOPCAST_SFU_WORKERS="2",  # the node and one worker process
            SHOPCAST_ICE_HOST_ADDRESSES="127.0.0.1",
        )
        try:
            await wait_healthy(url)
            tally, done = Tally(), asyncio.Event()
            watching = asyncio.create_task(watch(node.pid, args.interval, tally, done))
            try:
                await churn(url, args, tally, time.monotonic() + args.minutes * 60)
            finally:
                done.set()
            report(await watching, tally)
        finally:
            node.terminate()
            try:
                node.wait(60)  # a node finishes its recordings before it exits
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the churn runs")
    parser.add_argument("--shows", type=int, default=2, help="shows live at once")
    parser.add_argument("--show-seconds", type=float, default=20.0, help="each show's length")
    parser.add_argument("--webrtc", type=int, default=3, help="WHEP viewers per show, at most")
    parser.add_argument("--sockets", type=int, default=6, help="Socket.IO viewers per show")
    parser.add_argument("--seed", type=int, default=22, help="of the churn's choices")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between lines")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
