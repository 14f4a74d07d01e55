"""Janus beside Shopcast: the same clip, viewers and CPU pinning, in one run.

    python -m bench.janus --viewers 50 --seconds 15

Needs Debian's ``janus`` (1.1.2: ``apt-get install -y janus``); its configuration is written
into a temporary directory for each run, nothing of Janus is kept. All traffic is on
127.0.0.1. In order:

It runs itself inside a network namespace it creates (root needed): libnice, under Janus,
gathers on no loopback interface, so Janus gathers on a veth end holding 127.0.1.1, whose
traffic the kernel still delivers over loopback.

1. Shopcast: ``bench.sfu`` with the native fan-out, with the Python one, and native on the
   UDP mux (one socket: ``sendmmsg`` batches); its own processes, the SFU pinned to CPU 0,
   publisher and viewers on the other CPUs.
2. Janus's streaming plugin, once with ``event_loops = 1`` and once in its default
   configuration (a thread per handle), pinned to CPU 0 with ``taskset``, fed the same 720p30
   H.264 clip and an Opus tone over plain RTP, and watched by the same counting aiortc viewers
   (from the other CPUs), signalled over Janus's HTTP API.

For each it prints the server's marginal CPU µs per forwarded packet (what the viewers'
packets add to the server's CPU with the publisher alone, divided by the packets they
counted), viewers per core at 70 % at the stream's packet rate, and the ratio of each
Shopcast path to Janus's best configuration. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import RTCSessionDescription
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder

from bench import FIGURES, emit, spawn
from bench.sfu import CountingViewer, pin, read_json, run_seconds, stop, stop_all
from peers.clip import ToneTrack, encode_clip
from peers.webrtc import new_pc
from sfu.aiortc_hooks import disable_decoding, dtls_transports
from sfu.candidates import gathering_on

PLUGINS = Path("/usr/lib/x86_64-linux-gnu/janus")
VIDEO_PT, AUDIO_PT, MOUNTPOINT = 96, 111, 1
# libnice gathers on no loopback interface: Janus and its viewers meet on a veth end inside
# the benchmark's network namespace holding a 127/8 address, still delivered by loopback.
JANUS_HOST = ("127.0.1.1",)
JANUS_INTERFACE = "jv0"


def janus_config(folder: Path, http_port: int, rtp: tuple[int, int], loops: int) -> Path:
    """Janus's configuration for one run, under ``folder``: only the HTTP transport and the
    streaming plugin are loaded (a folder of links to them)."""
    for kind, names in (
        ("plugins", ["libjanus_streaming.so"]),
        ("transports", ["libjanus_http.so"]),
    ):
        (folder / kind).mkdir()
        for name in names:
            (folder / kind / name).symlink_to(PLUGINS / kind / name)
    (folder / "none").mkdir()
    loop_line = f"event_loops = {loops}" if loops else ""
    (folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{folder / "plugins"}"
    transports_folder = "{folder / "transports"}"
    events_folder = "{folder / "none"}"
    loggers_folder = "{folder / "none"}"
    debug_level = 2
    {loop_line}
}}
media: {{ rtp_port_range = "40000-49999" }}
nat: {{ ice_enforce_list = "{JANUS_INTERFACE}" }}
"""
    )
    (folder / "janus.transport.http.jcfg").write_text(
        f"""general: {{ json = "compact" base_path = "/janus" http = true port = {http_port}
    ip = "127.0.0.1" https = false }}
admin: {{ admin_http = false }}
"""
    )
    (folder / "janus.plugin.streaming.jcfg").write_text(
        f"""bench: {{
    type = "rtp"
    id = {MOUNTPOINT}
    audio = true
    video = true
    audioport = {rtp[1]}
    audiopt = {AUDIO_PT}
    audiocodec = "opus"
    videoport = {rtp[0]}
    videopt = {VIDEO_PT}
    videocodec = "h264"
    videofmtp = "profile-level-id=42e01f;packetization-mode=1"
}}
"""
    )
    return folder / "janus.jcfg"


NAMESPACE = "shopcast-bench-janus"


def in_namespace(argv: list[str]) -> int:
    """Run this benchmark again inside a network namespace of its own (loopback and the veth
    end Janus gathers on); the namespace is removed afterwards. The exit status."""

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True)  # noqa: S603, S607 - fixed arguments

    ip("netns", "add", NAMESPACE)
    try:
        inside = ("netns", "exec", NAMESPACE, "ip")
        ip(*inside, "link", "set", "lo", "up")
        ip(*inside, "link", "add", JANUS_INTERFACE, "type", "veth", "peer", "name", "jv1")
        ip(*inside, "addr", "add", f"{JANUS_HOST[0]}/32", "dev", JANUS_INTERFACE)
        for name in (JANUS_INTERFACE, "jv1"):
            ip(*inside, "link", "set", name, "up")
        command = ["ip", "netns", "exec", NAMESPACE, sys.executable, "-m", "bench.janus", *argv]
        return subprocess.run(command, check=False).returncode  # noqa: S603
    finally:
        ip("netns", "delete", NAMESPACE)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- the publisher: the clip over plain RTP ------------------------------------------------


async def tone_payloads() -> list[bytes]:
    """One second of the Opus tone bench.sfu's publisher sends, encoded once."""
    track, encoder, payloads = ToneTrack(), OpusEncoder(), []
    for _ in range(50):
        frame = await track.recv()
        assert isinstance(frame, av.AudioFrame)
        encoded, _ = encoder.encode(frame)
        payloads += encoded
    return payloads


async def run_feeder(video_port: int, audio_port: int) -> None:
    """Send the clip (30 fps) and the tone (50 packets/s) as RTP until stdin says stop."""
    pin(set(range(1, os.cpu_count() or 2)))
    frames = [
        H264Encoder._packetize(H264Encoder._split_bitstream(unit)) for unit, _ in encode_clip()
    ]
    audio = await tone_payloads()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    header = struct.Struct("!BBHII")
    loop = asyncio.get_running_loop()
    stopping = loop.run_in_executor(None, sys.stdin.readline)
    print(json.dumps({"feeding": True}), flush=True)
    video_seq = audio_seq = tick = 0
    started = time.monotonic()
    while not stopping.done():
        if tick % 5 == 0:  # 30 fps video on a 150 Hz tick, audio every 3 ticks (50/s)
            payloads = frames[(tick // 5) % len(frames)]
            for index, payload in enumerate(payloads):
                marker = 0x80 if index == len(payloads) - 1 else 0
                data = header.pack(0x80, marker | VIDEO_PT, video_seq & 0xFFFF, tick * 600, 0xAAA)
                sock.sendto(data + payload, ("127.0.0.1", video_port))
                video_seq += 1
        if tick % 3 == 0:
            data = header.pack(0x80, AUDIO_PT, audio_seq & 0xFFFF, audio_seq * 960, 0xBBB)
            sock.sendto(data + audio[audio_seq % len(audio)], ("127.0.0.1", audio_port))
            audio_seq += 1
        tick += 1
        await asyncio.sleep(max(0.0, started + tick / 150 - time.monotonic()))
    sock.close()


# --- viewers of Janus ---------------------------------------------------------------------


class JanusViewer(CountingViewer):
    """``bench.sfu``'s counting viewer, answering the offer of Janus's streaming plugin."""

    def __init__(self) -> None:
        super().__init__()
        self.pc = new_pc()  # no transceivers of its own: Janus offers them

    async def watch(self, http: aiohttp.ClientSession, url: str) -> None:
        self.offered_at = time.monotonic()
        session = (await self._post(http, url, {"janus": "create"}))["data"]["id"]
        self.session_url = f"{url}/{session}"
        attach = {"janus": "attach", "plugin": "janus.plugin.streaming"}
        handle = (await self._post(http, self.session_url, attach))["data"]["id"]
        handle_url = f"{self.session_url}/{handle}"
        watch = {"janus": "message", "body": {"request": "watch", "id": MOUNTPOINT}}
        await self._post(http, handle_url, watch)
        offer = await self._next_jsep(http)
        for line in offer["sdp"].splitlines():
            if line.startswith("a=rtpmap:") and "H264/" in line:
                self.video_pts.add(int(line[len("a=rtpmap:") :].split()[0]))
        self.pc.on("connectionstatechange", self._state)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        for transceiver in self.pc.getTransceivers():
            transceiver.direction = "recvonly"
            disable_decoding(transceiver.receiver)
        with gathering_on(JANUS_HOST):
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        for dtls in dtls_transports(self.pc):
            dtls._handle_rtp_data = self._count  # type: ignore[method-assign]
        answer = {"type": "answer", "sdp": self.pc.localDescription.sdp}
        start = {"janus": "message", "body": {"request": "start"}, "jsep": answer}
        await self._post(http, handle_url, start)

    async def _post(
        self, http: aiohttp.ClientSession, url: str, message: dict[str, Any]
    ) -> dict[str, Any]:
        message = {**message, "transaction": os.urandom(6).hex()}
        async with http.post(url, json=message) as response:
            reply: dict[str, Any] = await response.json()
        if reply.get("janus") == "error":
            raise RuntimeError(reply)
        return reply

    async def _next_jsep(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        while True:
            async with http.get(self.session_url, params={"maxev": "1"}) as response:
                event = await response.json()
            if "jsep" in event:
                jsep: dict[str, Any] = event["jsep"]
                return jsep

    async def keep_alive(self, http: aiohttp.ClientSession) -> None:
        """Long polls keep the session alive (Janus ends it after 60 s without one)."""
        while True:
            async with http.get(self.session_url, params={"maxev": "10"}) as response:
                await response.read()

    def packets(self) -> int:
        return sum(count for count, _, _ in self.streams.values())


async def run_janus_viewers(http_port: int, count: int) -> None:
    pin(set(range(1, os.cpu_count() or 2)))
    url = f"http://127.0.0.1:{http_port}/janus"
    async with aiohttp.ClientSession() as http:
        viewers = [JanusViewer() for _ in range(count)]
        for viewer in viewers:
            await viewer.watch(http, url)
            await asyncio.sleep(0.05)
        polls = [asyncio.ensure_future(v.keep_alive(http)) for v in viewers]
        for _ in range(600):
            if all(v.first_video_at for v in viewers):
                break
            await asyncio.sleep(0.05)
        joined = [(v.first_video_at - v.connected_at) * 1000 for v in viewers if v.first_video_at]
        print(json.dumps({"joined": joined}), flush=True)
        loop = asyncio.get_running_loop()
        while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "count":
            print(json.dumps({"packets": sum(v.packets() for v in viewers)}), flush=True)
        print(json.dumps({"loss": [v.loss() for v in viewers]}), flush=True)
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*(v.pc.close() for v in viewers))


# --- orchestration ------------------------------------------------------------------------


async def ask(process: asyncio.subprocess.Process, line: str) -> dict[str, Any]:
    assert process.stdin is not None
    process.stdin.write(line.encode() + b"\n")
    await process.stdin.drain()
    return await read_json(process, 60)


async def measure_janus(viewers: int, seconds: float, loops: int) -> dict[str, Any]:
    """One Janus configuration: its marginal CPU per packet the viewers count."""
    folder = Path(tempfile.mkdtemp(prefix="bench-janus-"))
    http_port, rtp = free_port(), (free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM))
    config = janus_config(folder, http_port, rtp, loops)
    janus = await asyncio.create_subprocess_exec(
        "taskset", "-c", "0", "janus", "-C", str(config), "-F", str(folder),
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    processes: list[asyncio.subprocess.Process] = []
    try:
        await asyncio.sleep(2)  # Janus loads its plugin and opens its HTTP port
        feeder = await spawn("bench.janus", "--role", "feeder", "--ports", f"{rtp[0]},{rtp[1]}")
        processes.append(feeder)
        await read_json(feeder, 120)
        await asyncio.sleep(3)
        started, idle_cpu = time.monotonic(), run_seconds(janus.pid)
        await asyncio.sleep(3)
        idle = (run_seconds(janus.pid) - idle_cpu) / (time.monotonic() - started)
        groups = [25] * (viewers // 25) + ([viewers % 25] if viewers % 25 else [])
        role = ("bench.janus", "--role", "viewers", "--port", str(http_port))
        clients = [await spawn(*role, "--count", str(n)) for n in groups]
        processes += clients
        ttff: list[float] = []
        for client in clients:
            ttff += (await read_json(client, 300))["joined"]
        await asyncio.sleep(2)
        before = sum([(await ask(c, "count"))["packets"] for c in clients])
        started, cpu = time.monotonic(), run_seconds(janus.pid)
        await asyncio.sleep(seconds)
        busy = (run_seconds(janus.pid) - cpu) / (time.monotonic() - started)
        packets = sum([(await ask(c, "count"))["packets"] for c in clients]) - before
        losses: list[float] = []
        for client in clients:
            losses += (await ask(client, "stop"))["loss"]
        rate = packets / (time.monotonic() - started) / max(len(ttff), 1)
        marginal = (busy - idle) * seconds / packets * 1e6 if packets else float("inf")
        return {
            "marginal_us": marginal,
            "per_core": (0.70 - idle) / (marginal * 1e-6 * rate) if packets else 0,
            "joined": len(ttff),
            "loss_max_pct": max(losses, default=1.0) * 100,
            "ttff_p50_ms": round(statistics.median(ttff)) if ttff else None,
        }
    finally:
        for process in processes:
            if process.returncode is None:
                await stop(process)
        await stop_all(processes)
        janus.terminate()
        await janus.wait()
        shutil.rmtree(folder)


async def measure_shopcast(viewers: int, seconds: float, native: str, mux: bool) -> dict[str, Any]:
    args = ("--viewers", str(viewers), "--seconds", str(seconds), "--native", native)
    process = await spawn("bench.sfu", *args, *(["--mux"] if mux else []))
    assert process.stdout is not None
    figures: dict[str, Any] = {}
    async for raw in process.stdout:
        line = raw.decode()
        print("  " + line, end="", flush=True)
        if line.startswith(FIGURES):
            figures = json.loads(line[len(FIGURES) :])
    await process.wait()
    return figures


async def orchestrate(viewers: int, seconds: float) -> None:
    results: dict[str, dict[str, Any]] = {}  # by figure name
    labels = {
        "shopcast_native": "Shopcast, native",
        "shopcast_python": "Shopcast, Python",
        "shopcast_native_mux": "Shopcast, native, mux",
        "janus_one_loop": "Janus, event_loops = 1",
        "janus_default": "Janus, default",
    }
    shopcast = (("shopcast_native", "on", False), ("shopcast_python", "off", False))
    shopcast += (("shopcast_native_mux", "on", True),)
    for key, native, mux in shopcast:
        print(f"--- {labels[key]}", flush=True)
        results[key] = await measure_shopcast(viewers, seconds, native, mux)
    for key, loops in (("janus_one_loop", 1), ("janus_default", 0)):
        print(f"--- {labels[key]}", flush=True)
        results[key] = await measure_janus(viewers, seconds, loops)
    janus_best = min(
        results["janus_one_loop"]["marginal_us"], results["janus_default"]["marginal_us"]
    )
    print(f"\n{viewers} viewers, the server on CPU 0; marginal CPU µs per forwarded packet:")
    figures: dict[str, Any] = {}
    for key, result in results.items():
        marginal = result.get("marginal_us") or float("inf")
        ratio = janus_best / marginal
        print(
            f"  {labels[key]:24} {marginal:6.2f} µs  viewers per core at 70 %: "
            f"{result.get('per_core', 0):5.0f} loss max {result.get('loss_max_pct', 0):.3f} % "
            f"first frame median {result.get('ttff_p50_ms')} ms  (Janus's best / this {ratio:.2f}x)"
        )
        figures[f"{key}_us"] = round(marginal, 2)
        figures[f"{key}_per_core"] = round(result.get("per_core", 0))
    for key in ("shopcast_native", "shopcast_native_mux"):
        figures[f"{key}_over_janus_best"] = round(janus_best / results[key]["marginal_us"], 2)
    emit(viewers=viewers, **figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    roles = ["orchestrator", "feeder", "viewers"]
    parser.add_argument("--role", choices=roles, default="orchestrator", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "feeder":
        video, audio = (int(p) for p in args.ports.split(","))
        asyncio.run(run_feeder(video, audio))
    elif args.role == "viewers":
        asyncio.run(run_janus_viewers(args.port, args.count))
    elif shutil.which("janus") is None:
        sys.exit("janus is not installed (apt-get install -y janus)")
    elif not Path("/sys/class/net", JANUS_INTERFACE).exists():
        sys.exit(in_namespace(sys.argv[1:]))
    else:
        asyncio.run(orchestrate(args.viewers, args.seconds))


if __name__ == "__main__":
    main()
