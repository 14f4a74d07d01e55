"""Free UDP ports for the SFU's port range in tests and benchmarks."""

from __future__ import annotations

import secrets
import socket

from sfu import PortRange

# Below Linux's ephemeral ports (32768-60999): a client socket never lands in the range.
_LOW, _HIGH = 20000, 32000


def free_range(count: int, attempts: int = 50) -> PortRange:
    """``count`` consecutive UDP ports that nothing holds on 127.0.0.1 right now."""
    for _ in range(attempts):
        first = _LOW + secrets.randbelow(_HIGH - count - _LOW)
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return PortRange(first, first + count - 1)
    raise RuntimeError(f"no {count} free consecutive UDP ports")
