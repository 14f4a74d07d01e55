"""Real Shopcast processes (and a private Redis) for multi-node and fault tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s")
        time.sleep(0.1)


START_SECONDS = 120  # a loaded machine (the suite beside stress-ng) took over 30 s


class Node:
    """``shopcast serve`` in a child process on a free loopback port: this checkout's, or
    ``command`` run in ``cwd``. A node that does not start is stopped before the error.

    Each node leads its own process group (its SFU workers are in it), and stopping or killing
    it signals the whole group. Every node started is in ``running`` until it is stopped, so a
    test that fails before its own ``finally`` still leaves nothing behind (``stop_all``, run
    after each test by ``tests/conftest.py``). Its output goes to ``node.log`` in its data
    directory, never to a pipe nobody reads.
    """

    running: ClassVar[set[Node]] = set()

    def __init__(
        self,
        data_dir: Path,
        *,
        command: list[str] | None = None,
        cwd: Path = ROOT,
        **settings: str,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "SHOPCAST_DATA_DIR": str(data_dir),
            "SHOPCAST_PORT": str(self.port),
            "SHOPCAST_PUBLIC_URL": self.url,
            "SHOPCAST_LOG_LEVEL": "WARNING",
        }
        env |= {f"SHOPCAST_{k.upper()}": v for k, v in settings.items()}
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir / "node.log"
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                command or [sys.executable, "-m", "server", "serve"],
                cwd=cwd,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        Node.running.add(self)
        try:
            wait_until(self._healthy, START_SECONDS, f"node on {self.port} did not start")
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(self.log.read_text(errors="replace")[-4000:] or "died")
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
            return bool(response.status == 200)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL to the node and its workers at once, as when its container dies."""
        self._signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        # Workers the node left behind (it was killed, or did not wait for them).
        self._signal(signal.SIGKILL)
        Node.running.discard(self)

    @classmethod
    def stop_all(cls) -> list[int]:
        """Stop every node still running; their process ids."""
        left = list(cls.running)
        for node in left:
            node.stop()
        return [node.process.pid for node in left]


class RedisServer:
    """A private redis-server on a free port, so a test may stop and restart it."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed (Debian package redis-server)"
        self._process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, 10, "redis did not start")

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None
