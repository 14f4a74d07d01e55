"""Chat fan-out: N Socket.IO viewers in one room, several chatters, a real Shopcast node.

    python -m bench.chat --viewers 1000 --rate 30 --seconds 10

Prints deliveries per second, deliveries per second of server CPU (per core), and the
p50/p99 time from a chatter's send to a viewer's receipt. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench import emit

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_node(data_dir: Path, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """A ``shopcast serve`` on a free loopback port; ``settings`` are more SHOPCAST_ variables."""
    port = free_port()
    env = {
        **os.environ,
        "SHOPCAST_DATA_DIR": str(data_dir),
        "SHOPCAST_PORT": str(port),
        "SHOPCAST_LOG_LEVEL": "WARNING",
        "SHOPCAST_AUTH_BURST": "1000",
        **settings,
    }
    subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    node = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return node, f"http://127.0.0.1:{port}"


async def wait_healthy(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the node did not start")


async def register(http: aiohttp.ClientSession, url: str, role: str) -> str:
    body = {
        "email": f"{secrets.token_hex(6)}@bench.example.com",
        "password": "bench password",
        "display_name": role,
        "role": role,
    }
    async with http.post(f"{url}/api/v1/auth/register", json=body) as response:
        data = await response.json()
        if response.status != 201:
            raise SystemExit(f"register failed: {data}")
        return str(data["access_token"])


def viewer_process(
    url: str, stream_id: str, count: int, ready: Any, results: Any, seconds: float
) -> None:
    asyncio.run(_viewers(url, stream_id, count, ready, results, seconds))


async def _viewers(
    url: str, stream_id: str, count: int, ready: Any, results: Any, seconds: float
) -> None:
    latencies: list[float] = []
    clients = []
    for _ in range(count):
        client = socketio.AsyncClient(reconnection=False)

        @client.on("stream:chat")
        async def on_chat(message: dict[str, Any]) -> None:
            latencies.append(time.time() - float(message["text"]))

        @client.on("stream:chat_batch")
        async def on_batch(batch: dict[str, Any]) -> None:
            now = time.time()
            latencies.extend(now - float(m["text"]) for m in batch["messages"])

        await client.connect(url, transports=["websocket"])
        await client.call("stream:join", {"stream_id": stream_id}, timeout=30)
        clients.append(client)
    ready.put(count)
    await asyncio.sleep(seconds + 3)
    results.put(latencies)
    for client in clients:
        await client.disconnect()


async def chatter(url: str, token: str, stream_id: str, rate: float, seconds: float) -> int:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, transports=["websocket"], auth={"token": token})
    await client.call("stream:join", {"stream_id": stream_id})
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reply = await client.call(
            "stream:chat", {"stream_id": stream_id, "text": repr(time.time())}
        )
        sent += bool(reply.get("ok"))
        await asyncio.sleep(1 / rate)
    await client.disconnect()
    return sent


async def run(viewers: int, rate: float, seconds: float, processes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        node, url = start_node(Path(tmp))
        try:
            await wait_healthy(url)
            async with aiohttp.ClientSession() as http:
                seller = await register(http, url, "seller")
                async with http.post(
                    f"{url}/api/v1/streams",
                    json={"title": "bench"},
                    headers={"Authorization": f"Bearer {seller}"},
                ) as response:
                    stream_id = (await response.json())["id"]
                chatters = max(1, int(rate / 4) + 1)
                tokens = [await register(http, url, "viewer") for _ in range(chatters)]
            ctx = mp.get_context("spawn")
            ready, results = ctx.Queue(), ctx.Queue()
            share = [viewers // processes + (i < viewers % processes) for i in range(processes)]
            workers = [
                ctx.Process(
                    target=viewer_process, args=(url, stream_id, n, ready, results, seconds)
                )
                for n in share
                if n
            ]
            for worker in workers:
                worker.start()
            for _ in workers:
                await asyncio.to_thread(ready.get, True, 300)
            cpu_before, wall_before = cpu_seconds(node.pid), time.monotonic()
            sent = sum(
                await asyncio.gather(
                    *(chatter(url, token, stream_id, rate / chatters, seconds) for token in tokens)
                )
            )
            await asyncio.sleep(1)
            cpu = cpu_seconds(node.pid) - cpu_before
            wall = time.monotonic() - wall_before
            latencies = [x for _ in workers for x in await asyncio.to_thread(results.get, True, 60)]
            for worker in workers:
                worker.join(30)
        finally:
            node.terminate()
            node.wait(20)
    delivered = len(latencies)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(
        f"viewers {viewers}  messages sent {sent}  deliveries {delivered} "
        f"(expected {sent * viewers}, lost {sent * viewers - delivered})"
    )
    print(
        f"deliveries/s {delivered / wall:,.0f}  server CPU {cpu / wall:.0%} of a core  "
        f"deliveries per CPU-second {delivered / max(cpu, 1e-9):,.0f}"
    )
    print(
        f"latency p50 {p(0.5):.1f} ms  p99 {p(0.99):.1f} ms  max {latencies[-1] * 1000:.1f} ms"
        if latencies
        else "no deliveries"
    )
    if latencies:
        print(f"mean {statistics.fmean(latencies) * 1000:.1f} ms")
    emit(
        viewers=viewers,
        deliveries_per_s=round(delivered / wall),
        deliveries_per_cpu_s=round(delivered / max(cpu, 1e-9)),
        lost=sent * viewers - delivered,
        p99_ms=round(p(0.99), 1) if latencies else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20, help="chat messages per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=4, help="viewer client processes")
    args = parser.parse_args()
    asyncio.run(run(args.viewers, args.rate, args.seconds, args.processes))


if __name__ == "__main__":
    main()
