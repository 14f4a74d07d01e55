"""A private PostgreSQL server (initdb + pg_ctl as user postgres) that a test may restart.

The shared server on 5432 serves everyone's tests and is never stopped; this one lives in
its own temporary directory on a free loopback port and is removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.nodes import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        # Not under pytest's tmp_path: its parents are private to root, and the server runs
        # as postgres.
        self.directory = Path(tempfile.mkdtemp(prefix="shopcast-pg-"))
        self._user = pwd.getpwnam("postgres")
        os.chown(self.directory, self._user.pw_uid, self._user.pw_gid)
        self._run("initdb", "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres")

    def _run(self, tool: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(BIN / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, f"{tool}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.directory / "data"), "-l", log, "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when the database restarts."""
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(BIN / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.directory, ignore_errors=True)

    @staticmethod
    def available() -> str | None:
        """Why a private server cannot run here, or None."""
        if not (BIN / "initdb").exists():
            return f"no PostgreSQL 15 binaries in {BIN}"
        if os.geteuid() != 0:
            return "starting a private PostgreSQL as user postgres needs root"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no postgres user"
        return None
