"""SFU fan-out benchmark: server CPU per forwarded packet, viewers per core, loss, TTFF.

    python -m bench.sfu --viewers 50 --seconds 20

Processes (all traffic on 127.0.0.1): the SFU server (pinned to CPU 0, measured from its own
/proc/PID/stat), one publisher replaying a pre-encoded 720p30 H.264 ~1.5 Mbit/s clip plus an
Opus tone, and viewer processes each holding many aiortc peer connections that count RTP
without parsing or decoding it (pinned to the other CPUs). Signaling is JSON lines over a
loopback TCP socket. Figures are printed, never asserted. The run starts by measuring the
kernel floor: what a plain ``sendto`` of the same datagrams to the same number of sockets
costs on this machine, without any SFU work. ``BENCH_PROFILE=path`` writes a cProfile of the
server process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import socket
import statistics
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCSessionDescription

from bench import emit, spawn
from peers.clip import ClipTrack, ToneTrack, encode_clip
from peers.webrtc import LOOPBACK, new_pc
from sfu import (
    ConsumerStats,
    IceSettings,
    MediaPorts,
    PortSettings,
    Sfu,
    SfuSettings,
    serving_media_ports,
)
from sfu.aiortc_hooks import disable_decoding, dtls_transports, nominated_pairs, raw_socket
from sfu.candidates import gathering_on
from sfu.native import Mode

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_HEADER = struct.Struct("!BBHII")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def run_seconds(pid: int) -> float:
    """CPU time of all of a process's threads in seconds, at nanosecond resolution.

    From the scheduler (``/proc/PID/task/*/schedstat``, like ``time.process_time()``), which
    counts the loopback softirq work a ``sendto`` does in the task's context as the ticks of
    :func:`cpu_seconds` do. Those ticks are 10 ms: the 3 s publisher-only window holds ~17 of
    them, a ±25 % error on the idle figure that the marginal cost and the capacity inherit.
    Falls back to the ticks where schedstat is missing.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        total = 0
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                    total += int(schedstat.read().split()[0])
            except FileNotFoundError:
                pass  # the thread ended
        return total / 1e9
    except FileNotFoundError:
        return sum(cpu_seconds(pid))


def udp_receive_errors() -> int:
    """System-wide UDP datagrams dropped because a receive buffer was full."""
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    return int(dict(zip(rows[0], rows[1], strict=True))["RcvbufErrors"])


def pin(cpus: set[int]) -> None:
    available = os.sched_getaffinity(0)
    if cpus & available:
        os.sched_setaffinity(0, cpus & available)


async def request(port: int, message: dict[str, Any]) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()
    reply: dict[str, Any] = json.loads(await reader.readline())
    writer.close()
    await writer.wait_closed()
    return reply


# --- server -------------------------------------------------------------------------------


# A benchmark's own requests to the server process (bench.signins): message in, reply out.
Op = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def run_server(
    workers: int, ops: dict[str, Op] | None = None, native: Mode = "auto", mux: bool = False
) -> None:
    if workers == 1:
        pin({0})
    ports = PortSettings(udp_mux=mux)  # the mux: one socket, the native path's sendmmsg batches
    media_ports = contextlib.AsyncExitStack()
    await media_ports.enter_async_context(serving_media_ports(MediaPorts.for_process(ports, 0)))
    gc_time = [0.0, 0.0]  # seconds spent in the cyclic garbage collector, start of current

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]

    gc.callbacks.append(on_gc)
    sfu = Sfu(SfuSettings(ice=IceSettings(host_addresses=LOOPBACK), ports=ports, native=native))
    await sfu.start_workers(workers - 1)

    fan_out = [0.0]  # seconds spent in the producers' fan-out loops

    def timed(receive: Any) -> Any:
        def wrapper(data: bytes) -> None:
            started = time.perf_counter()
            receive(data)
            fan_out[0] += time.perf_counter() - started

        return wrapper

    async def totals() -> dict[str, Any]:
        room = sfu.get_room("bench")
        stats = await sfu.stats("bench")
        sent = dropped = viewers = lost = ingest = 0
        if room is not None and stats is not None:
            lost = sum(p.stats().packets_lost for p in room.producers().values())
            ingest = sum(p.packets for p in room.producers().values())
            viewers = stats.viewers
            for subscriber in stats.subscribers:
                for track in subscriber.tracks:
                    assert isinstance(track, ConsumerStats)
                    dropped += track.packets_dropped
                    sent += track.packets_sent + track.retransmitted
        return {
            "forwarded": sent,
            "dropped": dropped,
            "viewers": viewers,
            "fan_out": fan_out[0],
            "gc": gc_time[0],
            "upstream_lost": lost,
            "ingest": ingest,
        }

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        message = json.loads(await reader.readline())
        reply: dict[str, Any]
        if message["op"] == "publish":
            publisher, answer = await sfu.publish("bench", message["sdp"])
            routes = publisher.ingest._routes
            for index, route in enumerate(routes):
                if route is not None:
                    routes[index] = timed(route)
            reply = {"sdp": answer}
        elif message["op"] == "subscribe":
            _, answer = await sfu.subscribe("bench", message["sdp"])
            reply = {"sdp": answer}
        elif ops and message["op"] in ops:
            reply = await ops[message["op"]](message)
        else:
            reply = await totals()
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port, "workers": sfu.worker_pids()}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    server.close()
    await sfu.close()
    await media_ports.aclose()


# --- publisher ----------------------------------------------------------------------------


async def run_publisher(port: int) -> None:
    pin(set(range(1, os.cpu_count() or 2)))
    frames = encode_clip()
    pc = new_pc()
    pc.addTrack(ClipTrack(frames))
    pc.addTrack(ToneTrack())
    for transceiver in pc.getTransceivers():
        transceiver.direction = "sendonly"
    with gathering_on(LOOPBACK):
        await pc.setLocalDescription(await pc.createOffer())
    answer = await request(port, {"op": "publish", "sdp": pc.localDescription.sdp})
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    print(json.dumps({"publishing": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await pc.close()


# --- viewers ------------------------------------------------------------------------------


class CountingViewer:
    """A viewer that counts RTP per SSRC (sequence span, packets) and nothing else."""

    def __init__(self) -> None:
        self.pc = new_pc()
        for kind in ("audio", "video"):
            disable_decoding(self.pc.addTransceiver(kind, direction="recvonly").receiver)
        self.video_pts: set[int] = set()
        self.streams: dict[int, list[int]] = {}  # ssrc -> [packets, first ext seq, last ext seq]
        self.offered_at = self.connected_at = self.first_video_at = 0.0

    async def join(self, port: int) -> None:
        self.offered_at = time.monotonic()
        self.pc.on("connectionstatechange", self._state)
        with gathering_on(LOOPBACK):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = (await request(port, {"op": "subscribe", "sdp": self.pc.localDescription.sdp}))[
            "sdp"
        ]
        for line in answer.splitlines():
            if line.startswith("a=rtpmap:") and ("H264/" in line or "VP8/" in line):
                self.video_pts.add(int(line[len("a=rtpmap:") :].split()[0]))
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        for dtls in dtls_transports(self.pc):
            # Count instead of handing packets to aiortc's receiver: keeps viewers cheap.
            dtls._handle_rtp_data = self._count

    def _state(self) -> None:
        if self.pc.connectionState == "connected" and not self.connected_at:
            self.connected_at = time.monotonic()
            for dtls in dtls_transports(self.pc):
                self._count_before_decryption(dtls)

    def _count_before_decryption(self, dtls: Any) -> None:
        """From now on count SRTP by its clear header, before aioice queues it.

        Without SRTP unprotect, asyncio queue and coroutines per packet a viewer costs a
        fraction of a full aiortc receiver, so more of them fit on the client core. DTLS,
        RTCP and STUN still take aiortc's path.
        """
        connection = dtls.transport._connection
        original = connection.data_received

        def data_received(data: bytes, component: int) -> None:
            if len(data) >= 12 and 0x80 <= data[0] < 0xC0 and not 192 <= data[1] <= 223:
                self._count_header(data)
            else:
                original(data, component)

        connection.data_received = data_received
        pair = nominated_pairs(dtls).get(1)
        if pair is not None:
            sock = raw_socket(pair.protocol.transport)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)

    async def _count(self, data: bytes, arrival_time_ms: int) -> None:
        self._count_header(data)

    def _count_header(self, data: bytes) -> None:
        _, b1, seq, _, ssrc = _HEADER.unpack_from(data)
        if not self.first_video_at and (b1 & 0x7F) in self.video_pts:
            self.first_video_at = time.monotonic()
        stream = self.streams.get(ssrc)
        if stream is None:
            self.streams[ssrc] = [1, seq, seq]
            return
        stream[0] += 1
        last = stream[2]
        delta = (seq - (last & 0xFFFF)) & 0xFFFF
        if delta < 0x8000:
            stream[2] = last + delta

    def loss(self) -> float:
        expected = sum(last - first + 1 for _, first, last in self.streams.values())
        received = sum(count for count, _, _ in self.streams.values())
        return max(0.0, 1 - received / expected) if expected else 1.0


async def run_viewers(port: int, count: int, stagger: float) -> None:
    pin(set(range(1, os.cpu_count() or 2)))
    viewers = [CountingViewer() for _ in range(count)]
    for viewer in viewers:
        await viewer.join(port)
        await asyncio.sleep(stagger)
    for _ in range(600):  # up to 30 s for every viewer's first video packet
        if all(v.first_video_at for v in viewers):
            break
        await asyncio.sleep(0.05)
    joins = [
        {
            "ttff_ms": (v.first_video_at - v.connected_at) * 1000 if v.first_video_at else None,
            "join_ms": (v.first_video_at - v.offered_at) * 1000 if v.first_video_at else None,
        }
        for v in viewers
    ]
    print(json.dumps({"joined": joins}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print(json.dumps({"loss": [v.loss() for v in viewers]}), flush=True)
    await asyncio.gather(*(v.pc.close() for v in viewers))


# --- kernel floor -------------------------------------------------------------------------


async def run_floor_receiver(count: int) -> None:
    """``count`` sockets in an asyncio loop, like the viewers' (the sender wakes this process)."""
    pin(set(range(1, os.cpu_count() or 2)))
    loop = asyncio.get_running_loop()
    ports = []
    for _ in range(count):
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        ports.append(transport.get_extra_info("sockname")[1])
    print(json.dumps({"ports": ports}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)


def run_floor_sender(ports: list[int], rate: float, seconds: float) -> None:
    """Plain ``sendto`` of 1.2 kB datagrams to each port at ``rate`` per second: no SFU."""
    pin({0})
    sockets = []
    for _ in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sockets.append(sock)
    data, sent = os.urandom(1200), 0
    before = time.process_time()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        for sock, port in zip(sockets, ports, strict=True):
            try:
                sock.sendto(data, ("127.0.0.1", port))
                sent += 1
            except BlockingIOError:
                pass
        time.sleep(1 / rate)
    after = time.process_time()
    for sock in sockets:
        sock.close()
    print(json.dumps({"us_per_packet": (after - before) / max(sent, 1) * 1e6}))


async def kernel_floor(count: int) -> float:
    """CPU µs one plain UDP send costs on this machine, same fan-out shape, no SFU at all."""
    receiver = await spawn("bench.sfu", "--role", "floor-rx", "--count", str(count))
    try:
        ports = (await read_json(receiver, 30))["ports"]
        sender = await spawn(
            "bench.sfu", "--role", "floor-tx", "--ports", ",".join(map(str, ports))
        )
        result: float = (await read_json(sender, 60))["us_per_packet"]
        await sender.wait()
        return result
    finally:
        await stop(receiver)
        await receiver.wait()


# --- orchestration ------------------------------------------------------------------------


async def read_json(process: asyncio.subprocess.Process, within: float) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), within)
    if not line:
        raise RuntimeError("a benchmark process died")
    result: dict[str, Any] = json.loads(line)
    return result


async def stop(process: asyncio.subprocess.Process) -> None:
    assert process.stdin is not None
    process.stdin.write(b"stop\n")
    await process.stdin.drain()


async def stop_all(processes: list[asyncio.subprocess.Process]) -> None:
    """Ask each process still running to stop; kill the ones that do not within 20 s."""
    for process in processes:
        if process.returncode is None:
            try:
                await stop(process)
                await asyncio.wait_for(process.wait(), 20)
            except (TimeoutError, ConnectionError):
                process.kill()
                await process.wait()


def _ticks(pids: list[int]) -> tuple[float, float]:
    times = [cpu_seconds(pid) for pid in pids]
    return sum(t[0] for t in times), sum(t[1] for t in times)


async def measure(
    server: list[int],
    port: int,
    seconds: float,
    clients: list[asyncio.subprocess.Process],
) -> dict[str, float]:
    before_run = sum(run_seconds(pid) for pid in server)
    before_cpu, before = _ticks(server), await request(port, {"op": "stats"})
    before_clients = sum(run_seconds(p.pid) for p in clients)
    before_overflows = udp_receive_errors()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    after_run = sum(run_seconds(pid) for pid in server)
    after_cpu, after = _ticks(server), await request(port, {"op": "stats"})
    after_clients = sum(run_seconds(p.pid) for p in clients)
    overflows = udp_receive_errors() - before_overflows
    elapsed = time.monotonic() - started
    return {
        "clients": (after_clients - before_clients) / elapsed,
        "viewers_before": before["viewers"],
        "viewers_after": after["viewers"],
        "overflows": overflows,
        "upstream_lost": after["upstream_lost"] - before["upstream_lost"],
        "ingest_per_s": (after["ingest"] - before["ingest"]) / elapsed,
        "cpu": (after_run - before_run) / elapsed,
        "ticks": (sum(after_cpu) - sum(before_cpu)) / elapsed,
        "user": (after_cpu[0] - before_cpu[0]) / elapsed,
        "system": (after_cpu[1] - before_cpu[1]) / elapsed,
        "packets_per_s": (after["forwarded"] - before["forwarded"]) / elapsed,
        "dropped": after["dropped"] - before["dropped"],
        "fan_out": (after["fan_out"] - before["fan_out"]) / elapsed,
        "gc": (after["gc"] - before["gc"]) / elapsed,
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def orchestrate(
    viewers: int, seconds: float, per_process: int, workers: int, native: str, mux: bool
) -> None:
    floor = await kernel_floor(viewers)
    server = await spawn(
        "bench.sfu",
        "--role",
        "server",
        "--workers",
        str(workers),
        "--native",
        native,
        *(["--mux"] if mux else []),
    )
    processes = [server]
    try:
        started = await read_json(server, 60)
        port, pids = started["port"], [server.pid, *started["workers"]]
        publisher = await spawn("bench.sfu", "--role", "publisher", "--port", str(port))
        processes.append(publisher)
        await read_json(publisher, 120)
        await asyncio.sleep(3)
        idle = await measure(pids, port, 3, [publisher])
        groups = [per_process] * (viewers // per_process)
        if viewers % per_process:
            groups.append(viewers % per_process)
        viewer_processes = [
            await spawn("bench.sfu", "--role", "viewers", "--port", str(port), "--count", str(n))
            for n in groups
        ]
        processes += viewer_processes
        joins: list[dict[str, float | None]] = []
        for process in viewer_processes:
            joins += (await read_json(process, 300))["joined"]
        await asyncio.sleep(2)
        busy = await measure(pids, port, seconds, [publisher, *viewer_processes])
        for process in viewer_processes:
            await stop(process)
        losses: list[float] = []
        for process in viewer_processes:
            losses += (await read_json(process, 60))["loss"]
        report(viewers, workers, seconds, idle, busy, joins, losses, floor)
    finally:
        await stop_all(processes)


def report(
    viewers: int,
    workers: int,
    seconds: float,
    idle: dict[str, float],
    busy: dict[str, float],
    joins: list[dict[str, float | None]],
    losses: list[float],
    floor: float,
) -> None:
    per_packet = busy["cpu"] / busy["packets_per_s"] * 1e6 if busy["packets_per_s"] else 0.0
    marginal = (busy["cpu"] - idle["cpu"]) / busy["packets_per_s"] * 1e6
    # Per viewer at the stream's own packet rate (the publisher's, measured without viewers):
    # if the client core cannot keep up, viewers get fewer packets and the raw ratio flatters.
    stream_rate = idle["ingest_per_s"]
    per_viewer = marginal * 1e-6 * stream_rate
    capacity = (0.70 - idle["cpu"]) / per_viewer if per_viewer > 0 else float("inf")
    ttff = [j["ttff_ms"] for j in joins if j["ttff_ms"] is not None]
    join = [j["join_ms"] for j in joins if j["join_ms"] is not None]
    print(
        f"viewers                        {viewers} ({seconds:.0f} s measured; connected at "
        f"start/end of the window: {busy['viewers_before']:.0f}/{busy['viewers_after']:.0f})"
    )
    print(
        f"server CPU, publisher only     {idle['cpu'] * 100:.1f} % of one core "
        f"(10 ms ticks: {idle['ticks'] * 100:.1f} %)"
    )
    print(
        f"server CPU, with viewers       {busy['cpu'] * 100:.1f} % of one core "
        f"(10 ms ticks: {busy['ticks'] * 100:.1f} %, user {busy['user'] * 100:.1f} %, "
        f"system {busy['system'] * 100:.1f} %)"
    )
    print(
        f"forwarded packets              {busy['packets_per_s']:.0f} /s "
        f"({busy['packets_per_s'] / viewers:.0f} per viewer), dropped {busy['dropped']:.0f}"
    )
    print(f"server CPU per forwarded packet {per_packet:.2f} us (marginal {marginal:.2f} us)")
    print(f"  of which fan-out loop (wall)  {busy['fan_out'] / busy['packets_per_s'] * 1e6:.2f} us")
    print(f"  garbage collector             {busy['gc'] * 100:.1f} % of one core")
    print(f"  kernel floor: plain sendto    {floor:.2f} us (same shape, no SFU, no SRTP)")
    print(f"  SFU's own (marginal - floor)  {marginal - floor:.2f} us (SRTP, Python, aiortc)")
    print(
        f"stream packet rate             {stream_rate:.0f} /s (video + audio, from the publisher)"
    )
    print(f"server CPU per viewer          {per_viewer * 100:.3f} % of one core")
    print(f"viewers per core at 70 %       {capacity:.0f}")
    if workers > 1:
        total = (0.70 * workers - idle["cpu"]) / per_viewer if per_viewer > 0 else float("inf")
        print(
            f"viewers with {workers} SFU processes  {total:.0f} (70 % of each of {workers} cores)"
        )
    print(
        f"client processes               {busy['clients'] * 100:.0f} % CPU (publisher + viewers, "
        f"one core); publisher -> SFU loss {busy['upstream_lost']:.0f} packets; "
        f"UDP receive-buffer overflows (any process) {busy['overflows']:.0f}"
    )
    print(
        f"packet loss per viewer         mean {statistics.mean(losses) * 100:.3f} %, "
        f"max {max(losses) * 100:.3f} %"
    )
    emit(
        viewers=viewers,
        workers=workers,
        marginal_us=round(marginal, 2),
        per_core=round(capacity),
        total=round((0.70 * workers - idle["cpu"]) / per_viewer) if per_viewer > 0 else None,
        loss_max_pct=round(max(losses) * 100, 3),
        ttff_p50_ms=round(statistics.median(ttff)) if ttff else None,
    )
    if ttff:
        print(
            f"time to first frame (connected -> first video RTP)  median "
            f"{statistics.median(ttff):.0f} ms, p90 {percentile(ttff, 0.9):.0f} ms "
            f"({len(ttff)}/{len(joins)} viewers)"
        )
        print(
            f"join time (offer -> first video RTP)               median "
            f"{statistics.median(join):.0f} ms, p90 {percentile(join, 0.9):.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--per-process", type=int, default=25, help="viewers per process")
    parser.add_argument("--workers", type=int, default=1, help="SFU processes (serve --workers)")
    parser.add_argument(
        "--native", choices=["auto", "on", "off"], default="auto", help="SHOPCAST_SFU_NATIVE"
    )
    parser.add_argument("--mux", action="store_true", help="SHOPCAST_ICE_UDP_MUX=true")
    roles = ["orchestrator", "server", "publisher", "viewers", "floor-rx", "floor-tx"]
    parser.add_argument("--role", choices=roles, default="orchestrator", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            cProfile.run(
                f"asyncio.run(run_server({args.workers}, native={args.native!r}, mux={args.mux}))",
                os.environ["BENCH_PROFILE"],
            )
        else:
            asyncio.run(run_server(args.workers, native=args.native, mux=args.mux))
    elif args.role == "publisher":
        asyncio.run(run_publisher(args.port))
    elif args.role == "floor-rx":
        asyncio.run(run_floor_receiver(args.count))
    elif args.role == "floor-tx":
        run_floor_sender([int(p) for p in args.ports.split(",")], rate=241, seconds=5)
    elif args.role == "viewers":
        asyncio.run(run_viewers(args.port, args.count, stagger=0.05))
    else:
        asyncio.run(
            orchestrate(
                args.viewers,
                min(args.seconds, 600),
                args.per_process,
                args.workers,
                args.native,
                args.mux,
            )
        )


if __name__ == "__main__":
    main()
