"""Go-live notifications: a show's N followers emailed by the notification jobs, on SQLite or
PostgreSQL, with the event loop's lag measured while they run.

    python -m bench.notifications --followers 10000 --engine sqlite

One node on loopback with an SMTP server (aiosmtpd) in the same event loop; every follower
asked for emails. Prints notifications per second (from going live to the last email in the
mailbox), and the loop's lag p99 and worst during the fan-out beside the same probe's p99 on
the idle node just before: how late a 5 ms timer fires. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from api.shows.lifecycle import StreamLifecycle
from api.web.context import SERVICES
from bench import emit
from bench.orders import database, served
from peers.audience import add_followers
from peers.looplag import LoopLag
from peers.mailbox import Inbox, smtp_server

IDLE_SECONDS = 2.0


async def run(followers: int, engine: str) -> None:
    inbox = Inbox()
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            database(engine, Path(tmp)) as url,
            smtp_server(inbox) as port,
            served(
                url,
                Path(tmp) / "data",
                0,
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_starttls=False,
            ) as shop,
        ):
            async with shop.http.get(f"{shop.base}/api/v1/me", headers=shop.seller) as r:
                seller_id = (await r.json())["id"]
            await add_followers(url, seller_id, followers)
            idle = LoopLag()
            idle.start()
            await asyncio.sleep(IDLE_SECONDS)
            await idle.stop()
            busy = LoopLag()
            busy.start()
            started = time.perf_counter()
            async with shop.http.post(
                f"{shop.base}/api/v1/streams", headers=shop.seller, json={"title": "Bench live"}
            ) as r:
                stream = (await r.json())["id"]
            services = shop.app[SERVICES]
            await StreamLifecycle(services.sessions, services.rooms, services.bus).media_started(
                stream
            )
            await inbox.holding(followers)
            took = time.perf_counter() - started
            await busy.stop()
    print(
        f"{engine}: {followers} emails in {took:.1f} s: {followers / took:.0f} notifications/s; "
        f"loop lag p99 {busy.quantile(0.99) * 1000:.1f} ms, worst {busy.worst * 1000:.1f} ms "
        f"(idle p99 {idle.quantile(0.99) * 1000:.1f} ms)"
    )
    emit(
        notifications_per_s=round(followers / took),
        lag_p99_ms=round(busy.quantile(0.99) * 1000, 1),
        lag_worst_ms=round(busy.worst * 1000, 1),
        idle_p99_ms=round(idle.quantile(0.99) * 1000, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    asyncio.run(run(args.followers, args.engine))


if __name__ == "__main__":
    main()
