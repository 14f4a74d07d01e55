"""SFU forwarding while sign-ins arrive: µs per forwarded packet and loss, without sign-ins,
with them checked on Passwords' threads (as the login route does), and on the event loop (as it
did before).

    python -m bench.signins --viewers 20 --seconds 15 --rate 50

The processes and the measurement are bench.sfu's (its server pinned to CPU 0 with one SFU
process, its publisher and counting viewers on the other CPUs, all on 127.0.0.1); the server
process also checks ``--rate`` argon2 passwords a second, at production cost, in the same event
loop as the forwarding. Each window prints the server's CPU per forwarded packet (every thread,
hashing included, and the loop's thread alone), the fan-out loop's wall time per packet, the
loop's stalls (how long a packet may wait before it is forwarded), the packets lost from the
publisher to the SFU, dropped by the SFU and overflowing any UDP receive buffer, and the
sign-ins completed. Sign-ins beyond what the hashers complete wait in their queue and are
dropped at the end of the window. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

from api.identity.auth import Passwords, hash_password, verify_password
from bench import emit, spawn
from bench.sfu import (
    CLOCK_TICKS,
    measure,
    percentile,
    read_json,
    request,
    run_server,
    stop,
    stop_all,
)
from server.cpus import usable_cpus

TICK = 0.005
PASSWORD = "bench password"  # noqa: S105 (a benchmark account's)
MODES = ("none", "threads", "loop")


class SignIns:
    """Sign-ins arriving in the server's loop at a rate: each checks a password on Passwords'
    threads (``threads``) or on the loop itself (``loop``). A sampler records the loop's
    stalls: how late a TICK-second sleep wakes."""

    def __init__(self) -> None:
        self._stored = hash_password(PASSWORD)
        self._passwords = Passwords(max(1, usable_cpus() // 2))
        self._pending: set[asyncio.Task[None]] = set()
        self._arrivals: asyncio.Task[None] | None = None
        self._completed = 0
        self._stalls: list[float] = []
        self._sampler: asyncio.Task[None] | None = None

    async def start(self, message: dict[str, Any]) -> dict[str, Any]:
        self._sampler = self._sampler or asyncio.create_task(self._sample())
        self._completed = 0
        self._stalls.clear()
        if message["mode"] != "none":
            self._arrivals = asyncio.create_task(self._arrive(message["mode"], message["rate"]))
        return {}

    async def finish(self, message: dict[str, Any]) -> dict[str, Any]:
        """The window's figures; the sign-ins still waiting are dropped."""
        if self._arrivals is not None:
            self._arrivals.cancel()
            self._arrivals = None
        for task in self._pending:
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        stalls = sorted(self._stalls) or [0.0]
        return {
            "completed": self._completed,
            "stall_p50": statistics.median(stalls),
            "stall_p99": percentile(stalls, 0.99),
            "stall_max": stalls[-1],
        }

    async def _arrive(self, mode: str, rate: float) -> None:
        """On threads: ``rate`` a second on average, each waiting its turn at the hashers.
        On the loop: one after the other as the loop checks them, at most ``rate`` a second;
        each holds the loop for its whole check, as the login route did. (Arriving at the full
        rate they would pile up behind each other without end: what the loop can do is less.)"""
        loop = asyncio.get_running_loop()
        started, arrived = loop.time(), 0
        while True:
            if mode == "loop":
                verify_password(self._stored, PASSWORD)
                self._completed += 1
            else:
                due = int((loop.time() - started) * rate)
                for _ in range(due - arrived):
                    task = asyncio.create_task(self._sign_in())
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)
                arrived = due
            await asyncio.sleep(1 / rate)

    async def _sign_in(self) -> None:
        await self._passwords.verify(self._stored, PASSWORD)
        self._completed += 1

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(TICK)
            self._stalls.append(loop.time() - start - TICK)


def loop_thread_seconds(pid: int) -> float:
    """CPU time of a process's main thread (its event loop), in 10 ms ticks: the scheduler's
    nanosecond counters lag far behind for a thread that seldom sleeps (an argon2 check)."""
    with open(f"/proc/{pid}/task/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def window(
    server: int, port: int, seconds: float, clients: list[Any], mode: str, rate: float
) -> dict[str, float]:
    await request(port, {"op": "signins", "mode": mode, "rate": rate})
    loop_before = loop_thread_seconds(server)
    figures = await measure([server], port, seconds, clients)
    figures["loop_cpu"] = (loop_thread_seconds(server) - loop_before) / seconds
    return figures | await request(port, {"op": "finish"})


async def orchestrate(viewers: int, seconds: float, rate: float, per_process: int) -> None:
    server = await spawn("bench.signins", "--role", "server")
    processes = [server]
    try:
        port = (await read_json(server, 60))["port"]
        publisher = await spawn("bench.sfu", "--role", "publisher", "--port", str(port))
        processes.append(publisher)
        await read_json(publisher, 120)
        groups = [per_process] * (viewers // per_process) + [viewers % per_process]
        clients = [publisher]
        for count in filter(None, groups):
            clients.append(
                await spawn(
                    "bench.sfu", "--role", "viewers", "--port", str(port), "--count", str(count)
                )
            )
            processes.append(clients[-1])
            await read_json(clients[-1], 300)
        await asyncio.sleep(2)
        results = {
            mode: await window(server.pid, port, seconds, clients, mode, rate) for mode in MODES
        }
        losses: list[float] = []
        for process in clients[1:]:
            await stop(process)
            losses += (await read_json(process, 60))["loss"]
        report(viewers, seconds, rate, results, losses)
    finally:
        await stop_all(processes)


def report(
    viewers: int,
    seconds: float,
    rate: float,
    results: dict[str, dict[str, float]],
    losses: list[float],
) -> None:
    print(f"viewers {viewers}, {seconds:.0f} s a window, sign-ins {rate:.0f}/s in the last two")
    print(
        f"{'sign-ins':<10}{'us/pkt all':>11}{'us/pkt loop':>12}{'fan-out':>9}{'pkts/s':>8}"
        f"{'stall p50':>10}{'p99':>7}{'max':>7}{'lost in':>8}{'dropped':>8}{'overflow':>9}"
        f"{'done/s':>8}"
    )
    for mode, r in results.items():
        packets = r["packets_per_s"] or 1.0
        print(
            f"{mode:<10}{r['ticks'] / packets * 1e6:>11.2f}{r['loop_cpu'] / packets * 1e6:>12.2f}"
            f"{r['fan_out'] / packets * 1e6:>9.2f}{r['packets_per_s']:>8.0f}"
            f"{r['stall_p50'] * 1e3:>8.1f}ms{r['stall_p99'] * 1e3:>5.0f}ms"
            f"{r['stall_max'] * 1e3:>5.0f}ms{r['upstream_lost']:>8.0f}{r['dropped']:>8.0f}"
            f"{r['overflows']:>9.0f}{r['completed'] / seconds:>8.1f}"
        )
    print(
        f"viewer loss over all three windows: mean {statistics.mean(losses) * 100:.3f} %, "
        f"max {max(losses) * 100:.3f} %"
    )
    figures = {
        f"{mode}_{name}": round(value, 2)
        for mode, r in results.items()
        for name, value in (
            ("us_per_packet", r["loop_cpu"] / (r["packets_per_s"] or 1.0) * 1e6),
            ("stall_p99_ms", r["stall_p99"] * 1e3),
            ("lost", r["upstream_lost"] + r["dropped"] + r["overflows"]),
        )
    }
    emit(viewers=viewers, rate=rate, **figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=50.0, help="sign-ins per second")
    parser.add_argument("--per-process", type=int, default=25, help="viewers per process")
    parser.add_argument("--role", choices=["orchestrator", "server"], default="orchestrator")
    args = parser.parse_args()
    if args.role == "server":
        signins = SignIns()
        asyncio.run(run_server(1, {"signins": signins.start, "finish": signins.finish}))
    else:
        seconds = min(args.seconds, 300)
        asyncio.run(orchestrate(args.viewers, seconds, args.rate, args.per_process))


if __name__ == "__main__":
    main()
