"""The fan-out's cost per packet and viewer, native and Python, beside the kernel's floors.

    python -m bench.native --viewers 1000 --packets 600

In one process, pinned to one CPU: H.264-shaped packets (1,100-byte payloads, a keyframe
every 60) go into ``Producer.receive``, fanned out to ``--viewers`` real ``Consumer`` objects,
each with its own libsrtp context (AES-128-GCM, what browsers negotiate), once on the
native path (sfu/_fanout.c) and once on the Python one. Viewers send either on one shared
socket (``--shared``: the UDP mux's shape, where the native path batches 64 datagrams per
``sendmmsg``) or on a socket each (one ``sendmmsg`` per viewer). Beside them the kernel's
floors for the same datagrams: a ``sendto`` each, and ``sendmmsg`` in batches of 64 (through
libc with ctypes). Also: memory per viewer (RSS delta / viewers). Figures are printed, never
asserted; viewers per core assume the bench clip's stream (``--rate`` packets per second).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import socket

from bench import emit
from bench.layers import consumer, packet, producer, timed
from sfu import native

BATCH = 64


class _IoVec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("length", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_void_p),
        ("name_length", ctypes.c_uint32),
        ("iov", ctypes.POINTER(_IoVec)),
        ("iov_length", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("control_length", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("header", _MsgHdr), ("length", ctypes.c_uint))


class Burst:
    """Sends copies of a datagram to one address, 64 per ``sendmmsg`` (libc through ctypes)."""

    def __init__(self, sock: socket.socket, target: tuple[str, int]) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = sock.fileno()
        # Referenced by every message: it must live as long as they do.
        self._address = ctypes.create_string_buffer(
            socket.AF_INET.to_bytes(2, "little")
            + target[1].to_bytes(2, "big")
            + socket.inet_aton(target[0])
            + bytes(8)
        )
        self._vectors = (_IoVec * BATCH)()
        self._messages = (_MMsgHdr * BATCH)()
        self._buffers = [ctypes.create_string_buffer(1500) for _ in range(BATCH)]
        for index in range(BATCH):
            self._vectors[index].base = ctypes.addressof(self._buffers[index])
            header = self._messages[index].header
            header.name, header.name_length = ctypes.addressof(self._address), 16
            header.iov, header.iov_length = ctypes.pointer(self._vectors[index]), 1

    def send(self, data: bytes, copies: int) -> None:
        for index in range(min(BATCH, copies)):
            ctypes.memmove(self._buffers[index], data, len(data))  # as a fan-out renders each
            self._vectors[index].length = len(data)
        while copies > 0:
            batch = min(BATCH, copies)
            sent = self._libc.sendmmsg(self._fd, self._messages, batch, socket.MSG_DONTWAIT)
            if sent < 0:
                raise OSError(ctypes.get_errno(), "sendmmsg")
            copies -= batch


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--packets", type=int, default=600)
    parser.add_argument("--rate", type=float, default=200.0, help="stream packets per second")
    parser.add_argument("--shared", action="store_true", help="one socket for every viewer")
    args = parser.parse_args()
    if 0 in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {0})
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sink.setblocking(False)
    target = sink.getsockname()

    def drain() -> None:
        try:
            while True:
                sink.recv(2048)
        except BlockingIOError:
            pass

    def new_socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.setblocking(False)
        return sock

    viewers, count = args.viewers, args.packets
    stream = [packet(0xA, seq, None) for seq in range(count)]
    shared = new_socket()
    sockets = [shared] * viewers if args.shared else [new_socket() for _ in range(viewers)]
    results: dict[str, float] = {}
    burst = Burst(shared, target)
    results["floor_sendto"] = timed(
        lambda data: [s.sendto(data, target) for s in sockets], stream, drain
    )
    results["floor_sendmmsg"] = timed(lambda data: burst.send(data, viewers), stream, drain)
    memory: dict[str, float] = {}
    dropped: dict[str, int] = {}
    for path, mode in (("native", "on"), ("python", "off")):
        native.configure(mode)  # type: ignore[arg-type]
        before = rss()
        source = producer(None)
        consumers = [consumer(i, s, target, True) for i, s in enumerate(sockets)]
        for each in consumers:
            each.bind(source)
        memory[path] = (rss() - before) / viewers
        results[path] = timed(source.receive, stream, drain)
        dropped[path] = sum(each.packets_dropped for each in consumers)
        for each in consumers:
            each.close()
    native.configure("auto")

    shape = "one shared socket" if args.shared else "a socket per viewer"
    print(f"{viewers} viewers ({shape}), {count} packets; CPU µs per packet per viewer:")
    figures: dict[str, float] = {}
    for name, seconds in results.items():
        per_packet = seconds / (count * viewers) * 1e6
        figures[f"{name}_us"] = round(per_packet, 3)
        print(f"  {name:16} {per_packet:6.2f} µs", end="")
        if name in memory:
            capacity = 0.70 / (per_packet * 1e-6 * args.rate)
            figures[f"{name}_per_core"] = round(capacity)
            print(
                f"   viewers per core at 70 % ({args.rate:.0f} packets/s): {capacity:.0f}, "
                f"memory per viewer {memory[name] / 1024:.1f} kB, dropped {dropped[name]}",
                end="",
            )
        print()
    ratio = results["python"] / results["native"]
    mmsg = results["native"] / results["floor_sendmmsg"]
    sendto = results["native"] / results["floor_sendto"]
    print(
        f"  native: {ratio:.2f}x faster than Python, {mmsg:.2f}x the sendmmsg floor, "
        f"{sendto:.2f}x the sendto floor"
    )
    emit(viewers=viewers, shared=args.shared, native_over_python=round(ratio, 2), **figures)


if __name__ == "__main__":
    main()
