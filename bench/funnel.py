"""Product clicks on a real Shopcast node: what one click costs the server.

    python -m bench.funnel --clients 20 --seconds 10

After a short warm-up, clients join one show and send ``product:click`` back to back (each
waits for its ack), then for as long no-op events (``stream:leave`` of a show they are not in),
which cost the Socket.IO round trip and nothing else. A viewer's taps are rate limited (a burst
of 10, then one a second), so back to back most clicks are refused: that refusal is the path a
flood takes, and it is measured with the accepted clicks. Prints answered events per second
and server CPU per event for both, their difference (the click's own cost), and checks after
the next flush that the analytics counted every accepted click and no refused one. Loopback
only.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench.chat import cpu_seconds, register, start_node, wait_healthy

FLUSH_WAIT = 6.0
WARM_UP = 3.0


async def _clicker(
    url: str, stream_id: str, event: str, data: dict[str, Any], seconds: float
) -> int:
    """How many events the server answered, and how many of them it accepted."""
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, transports=["websocket"])
    await client.call("stream:join", {"stream_id": stream_id})
    answered = accepted = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reply = await client.call(event, data, timeout=10)
        accepted += reply == {"ok": True}
        answered += reply == {"ok": True} or reply.get("error") == "rate_limited"
    await client.disconnect()
    return answered, accepted


async def _phase(
    pid: int,
    url: str,
    stream_id: str,
    clients: int,
    event: str,
    data: dict[str, Any],
    seconds: float,
) -> tuple[int, int, float, float]:
    cpu, wall = cpu_seconds(pid), time.monotonic()
    counts = await asyncio.gather(
        *(_clicker(url, stream_id, event, data, seconds) for _ in range(clients))
    )
    answered, accepted = (sum(column) for column in zip(*counts, strict=True))
    return answered, accepted, cpu_seconds(pid) - cpu, time.monotonic() - wall


async def run(clients: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        node, url = start_node(Path(tmp))
        try:
            await wait_healthy(url)
            async with aiohttp.ClientSession() as http:
                seller = await register(http, url, "seller")
                auth = {"Authorization": f"Bearer {seller}"}
                body = {"title": "Mug", "price_cents": 1000, "stock": 5}
                async with http.post(f"{url}/api/v1/products", json=body, headers=auth) as r:
                    product_id = (await r.json())["id"]
                show = {"title": "bench", "product_ids": [product_id]}
                async with http.post(f"{url}/api/v1/streams", json=show, headers=auth) as r:
                    stream_id = (await r.json())["id"]
                click = {"stream_id": stream_id, "product_id": product_id}
                noop = {"stream_id": "not-joined"}
                # The node's first seconds are slower (imports, first queries): not measured.
                await _phase(node.pid, url, stream_id, clients, "stream:leave", noop, WARM_UP)
                clicks = await _phase(
                    node.pid, url, stream_id, clients, "product:click", click, seconds
                )
                noops = await _phase(
                    node.pid, url, stream_id, clients, "stream:leave", noop, seconds
                )
                await asyncio.sleep(FLUSH_WAIT)
                async with http.get(
                    f"{url}/api/v1/streams/{stream_id}/analytics", headers=auth
                ) as r:
                    counted = (await r.json())["products"][0]["clicks"]
        finally:
            node.terminate()
            node.wait(20)
    per_event = {}
    for name, (answered, _, cpu, wall) in (("product:click", clicks), ("no-op event", noops)):
        per_event[name] = cpu / max(answered, 1) * 1e6
        print(
            f"{name:14} answered {answered:7,}  {answered / wall:8,.0f}/s  "
            f"server CPU {cpu / wall:4.0%} of a core  {per_event[name]:6.1f} µs per event"
        )
    answered, accepted = clicks[0], clicks[1]
    print(
        f"a click's own cost: {per_event['product:click'] - per_event['no-op event']:.1f} µs "
        f"of server CPU; {accepted:,} of {answered:,} clicks accepted (the rest rate limited), "
        f"{counted:,} counted in the analytics"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    asyncio.run(run(args.clients, args.seconds))


if __name__ == "__main__":
    main()
