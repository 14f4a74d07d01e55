"""ICE UDP mux benchmark: server CPU per forwarded packet with one shared port, or not.

    python -m bench.mux --viewers 20 --seconds 8 --rounds 2

Same machine, same run, alternating: an SFU server (pinned to CPU 0, measured from its own
/proc/PID/task/*/schedstat) whose ICE sockets are aioice's own on random ports (``random``,
the reference), one port per session of a free loopback range (``ports``), or one shared port
(``mux``); the publisher and counting viewers of ``bench.sfu`` on the other CPU. The marginal
cost (CPU with viewers minus CPU with the publisher alone, per forwarded packet) of each mode
is printed, and its ratio to the reference. Then, in
this process, the mux's own per-datagram cost: routing a datagram of a known address, and
claiming an address with a session's first STUN binding request (parse + MESSAGE-INTEGRITY).
All traffic is on 127.0.0.1; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from typing import Any

from aioice import stun
from aioice.ice import Connection

from bench import emit, spawn
from bench.sfu import pin, read_json, request, run_seconds, stop, stop_all
from peers.ports import free_range
from sfu import IceSettings, MediaPorts, PortRange, PortSettings, Sfu, SfuSettings
from sfu.mux import UdpMux
from sfu.ports import serving_media_ports

LOOPBACK = ("127.0.0.1",)
MODES = ("random", "ports", "mux")


# --- server -------------------------------------------------------------------------------


async def run_server(mode: str, ports: PortRange) -> None:
    pin({0})
    port_settings = PortSettings(port_range=ports, udp_mux=mode == "mux")
    if mode == "random":
        port_settings = PortSettings()
    settings = SfuSettings(ice=IceSettings(host_addresses=LOOPBACK), ports=port_settings)
    async with serving_media_ports(MediaPorts.for_process(port_settings, 0)):
        sfu = Sfu(settings)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            message = json.loads(await reader.readline())
            reply: dict[str, Any]
            if message["op"] == "publish":
                reply = {"sdp": (await sfu.publish("bench", message["sdp"]))[1]}
            elif message["op"] == "subscribe":
                reply = {"sdp": (await sfu.subscribe("bench", message["sdp"]))[1]}
            else:
                reply = await totals(sfu)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        try:
            print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        finally:
            server.close()
            await sfu.close()


async def totals(sfu: Sfu) -> dict[str, Any]:
    room = sfu.get_room("bench")
    if room is None:
        return {"forwarded": 0, "ingest": 0, "viewers": 0, "ports": []}
    forwarded = sum(
        track.packets_sent + track.retransmitted
        for subscriber in room.subscribers
        for track in subscriber.stats().tracks
        if hasattr(track, "packets_sent")
    )
    sessions = [*room.subscribers, *([room.publisher] if room.publisher else [])]
    return {
        "forwarded": forwarded,
        "ingest": sum(p.packets for p in room.producers().values()),
        "viewers": len(room.subscribers),
        "ports": sorted({port for s in sessions for port in s.local_ports()}),
    }


# --- orchestration ------------------------------------------------------------------------


async def window(pid: int, port: int, seconds: float) -> tuple[float, float, float]:
    """(server CPU share, forwarded packets/s, ingest packets/s) over ``seconds``."""
    cpu, before, started = run_seconds(pid), await request(port, {"op": "stats"}), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, after = run_seconds(pid) - cpu, await request(port, {"op": "stats"})
    elapsed = time.monotonic() - started
    return (
        cpu / elapsed,
        (after["forwarded"] - before["forwarded"]) / elapsed,
        (after["ingest"] - before["ingest"]) / elapsed,
    )


async def one_run(mode: str, viewers: int, seconds: float) -> dict[str, float]:
    """One server in ``mode``: idle and busy windows, the marginal µs per forwarded packet."""
    ports = free_range(viewers + 8)
    server = await spawn(
        "bench.mux", "--role", "server", "--mode", mode, "--range", f"{ports.first}-{ports.last}"
    )
    processes = [server]
    try:
        port = (await read_json(server, 60))["port"]
        assert server.pid is not None
        publisher = await spawn("bench.sfu", "--role", "publisher", "--port", str(port))
        processes.append(publisher)
        await read_json(publisher, 120)
        await asyncio.sleep(2)
        idle_cpu, _, _ = await window(server.pid, port, 3)
        viewer = await spawn(
            "bench.sfu", "--role", "viewers", "--port", str(port), "--count", str(viewers)
        )
        processes.append(viewer)
        await read_json(viewer, 300)
        await asyncio.sleep(2)
        busy_cpu, forwarded, ingest = await window(server.pid, port, seconds)
        used = (await request(port, {"op": "stats"}))["ports"]
        await stop(viewer)
        loss = max((await read_json(viewer, 60))["loss"])
        marginal = (busy_cpu - idle_cpu) / forwarded * 1e6 if forwarded else float("nan")
        print(
            f"  {mode:6}  idle {idle_cpu * 100:5.1f} %  busy {busy_cpu * 100:5.1f} %  "
            f"forwarded {forwarded:6.0f}/s  ingest {ingest:4.0f}/s  "
            f"marginal {marginal:5.2f} us/packet  max loss {loss * 100:.2f} %  "
            f"server ports in use {len(used)}",
            flush=True,
        )
        return {"marginal": marginal, "loss": loss, "ports": len(used)}
    finally:
        await stop_all(processes)


# --- the mux alone ------------------------------------------------------------------------


async def demux_costs(routes: int, datagrams: int) -> tuple[float, float]:
    """(ns a routed datagram adds, µs to claim an address) on a real but idle mux socket."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    mux = await UdpMux.open(sock)
    try:
        received = [0]

        def deliver(data: bytes, addr: tuple[Any, ...]) -> None:
            received[0] += 1

        addresses = [("127.0.0.1", 40000 + i) for i in range(routes)]
        mux._routes.update(dict.fromkeys(addresses, deliver))
        packet, target = bytes(1200), addresses[routes // 2]
        best_direct = best_mux = float("inf")
        for _ in range(5):
            started = time.perf_counter_ns()
            for _ in range(datagrams):
                deliver(packet, target)
            best_direct = min(best_direct, time.perf_counter_ns() - started)
            started = time.perf_counter_ns()
            for _ in range(datagrams):
                mux.datagram_received(packet, target)
            best_mux = min(best_mux, time.perf_counter_ns() - started)
        routed = (best_mux - best_direct) / datagrams
        claim = await claim_cost(mux, 2000)
        return routed, claim
    finally:
        await mux.close()


class Counting(asyncio.DatagramProtocol):
    """Stands in for a session's ``StunProtocol``: the mux's cost alone, not aioice's."""

    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.received += 1


async def claim_cost(mux: UdpMux, count: int) -> float:
    """µs for the first, authenticated, binding request of an unclaimed address."""
    connection = Connection(ice_controlling=False)
    protocol = mux.attach(connection, Counting())
    requests = []
    for index in range(count):
        message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        message.attributes["USERNAME"] = f"{connection.local_username}:peer"
        message.attributes["PRIORITY"] = index
        message.add_message_integrity(connection.local_password.encode())
        message.add_fingerprint()
        requests.append((bytes(message), ("127.0.0.2", 20000 + index)))
    started = time.perf_counter_ns()
    for data, addr in requests:
        mux.datagram_received(data, addr)
    elapsed = time.perf_counter_ns() - started
    if protocol.received < count:
        raise RuntimeError(f"only {protocol.received} of {count} requests claimed an address")
    return elapsed / count / 1000


async def orchestrate(viewers: int, seconds: float, rounds: int) -> None:
    print(f"{viewers} viewers, {seconds:.0f} s windows, {rounds} round(s) of {'/'.join(MODES)}")
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            results[mode].append(await one_run(mode, viewers, seconds))
    median = {mode: statistics.median(r["marginal"] for r in results[mode]) for mode in MODES}
    routed, claim = await demux_costs(routes=1000, datagrams=200_000)
    reference = median["random"]
    print(f"marginal CPU per forwarded packet, aioice's random ports {reference:.2f} us (median)")
    print(
        f"marginal CPU per forwarded packet, a port per session    {median['ports']:.2f} us "
        f"({median['ports'] / reference:.2f}x)"
    )
    print(
        f"marginal CPU per forwarded packet, one mux port          {median['mux']:.2f} us "
        f"({median['mux'] / reference:.2f}x)"
    )
    print(f"mux: a routed datagram adds (1000 routes)                {routed:.0f} ns")
    print(f"mux: claiming an address (first STUN request)            {claim:.1f} us")
    emit(
        viewers=viewers,
        marginal_us_random=round(reference, 2),
        marginal_us_ports=round(median["ports"], 2),
        marginal_us_mux=round(median["mux"], 2),
        mux_over_random=round(median["mux"] / reference, 3),
        ports_over_random=round(median["ports"] / reference, 3),
        routed_ns=round(routed),
        claim_us=round(claim, 1),
        ports_used_mux=max(r["ports"] for r in results["mux"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two modes")
    parser.add_argument("--role", choices=["orchestrator", "server"], default="orchestrator")
    parser.add_argument("--mode", choices=MODES, default="mux", help=argparse.SUPPRESS)
    parser.add_argument("--range", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(run_server(args.mode, PortRange.parse(args.range)))
    else:
        asyncio.run(orchestrate(args.viewers, min(args.seconds, 120), min(max(args.rounds, 1), 5)))


if __name__ == "__main__":
    main()
