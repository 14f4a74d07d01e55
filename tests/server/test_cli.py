"""The command line as an operator uses it, in real subprocesses."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def shopcast(
    args: list[str], env: dict[str, str], **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,
    )  # type: ignore[call-overload]


@pytest.fixture
def env(tmp_path: Path, migrated: str) -> dict[str, str]:
    return {
        **os.environ,
        "SHOPCAST_DATA_DIR": str(tmp_path / "data"),
        "SHOPCAST_DATABASE_URL": migrated,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_help_documents_every_setting(env: dict[str, str]) -> None:
    result = shopcast(["serve", "--help"], env)
    assert result.returncode == 0
    assert "[default: .]" not in result.stdout
    for name in (
        "SHOPCAST_DATABASE_URL",
        "SHOPCAST_REDIS_URL",
        "SHOPCAST_MEDIA_DIR",
        "SHOPCAST_PUBLIC_URL",
        "SHOPCAST_JWT_SECRET",
        "SHOPCAST_CORS_ORIGINS",
        "SHOPCAST_ICE_SERVERS",
        "--port",
        "--host",
    ):
        assert name in result.stdout


def test_serve_answers_health_and_stops_cleanly(env: dict[str, str]) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**env, "SHOPCAST_SFU_WORKERS": "2"},  # the main process and one worker
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz", timeout=2
                ) as response:
                    assert json.load(response) == {"status": "ok"}
                    break
            except OSError:
                assert time.monotonic() < deadline, "server did not come up"
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            assert response.status == 200
            request_id = response.headers["X-Request-ID"]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert server.returncode == 0, output
    # Every line is one JSON object (json.loads fails on any other), the workers' too.
    lines = [json.loads(line) for line in output.splitlines()]
    (ready,) = [line for line in lines if line.get("path") == "/readyz"]
    assert (ready["logger"], ready["request_id"], ready["status"]) == (
        "aiohttp.access",
        request_id,
        200,
    )
    assert any(line["logger"] == "shopcast" and line["event"] == "serving" for line in lines)
    workers = [line for line in lines if line["logger"] == "sfu.worker"]
    assert workers and all(isinstance(line["worker_pid"], int) for line in workers), [
        (line["logger"], line["event"]) for line in lines
    ]


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = {**os.environ, "SHOPCAST_DATA_DIR": str(tmp_path / "data")}
    result = shopcast(["serve", "--port", str(free_port())], env)
    assert result.returncode == 1
    assert "shopcast migrate" in result.stderr
    assert shopcast(["migrate"], env).returncode == 0
    assert (tmp_path / "data" / "shopcast.db").exists()


def test_create_admin_then_sign_in(env: dict[str, str]) -> None:
    result = shopcast(
        ["create-admin", "--email", "Boss@Example.com", "--password-stdin"],
        env,
        input="admin password\n",
    )
    assert result.returncode == 0, result.stderr
    script = (
        "import asyncio, sys\n"
        "from sqlalchemy import select\n"
        "from api.identity.auth import verify_password\n"
        "from api.identity.models import User\n"
        "from server.database import create_engine, session_factory\n"
        "async def main():\n"
        "    engine = create_engine(sys.argv[1])\n"
        "    async with session_factory(engine)() as s:\n"
        "        u = await s.scalar(select(User).where(User.email == 'boss@example.com'))\n"
        "        print(u.role, verify_password(u.password_hash, 'admin password'))\n"
        "    await engine.dispose()\n"
        "asyncio.run(main())\n"
    )
    check = subprocess.run(
        [sys.executable, "-c", script, env["SHOPCAST_DATABASE_URL"]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert check.stdout.split() == ["admin", "True"]
    short = shopcast(
        ["create-admin", "--email", "b@example.com", "--password-stdin"], env, input="short\n"
    )
    assert short.returncode == 2 and "8 characters" in short.stderr
    # Sign-in refuses names reserved from mail, so the CLI makes no such admin either.
    reserved = shopcast(
        ["create-admin", "--email", "admin@shop.test", "--password-stdin"],
        env,
        input="admin password\n",
    )
    assert reserved.returncode == 2, reserved.stderr
    assert "admin@shop.test cannot be an account's email" in reserved.stderr
    assert "special-use or reserved name" in reserved.stderr


def test_openapi_command_matches_the_served_document(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "spec.json"
    assert shopcast(["openapi", "--output", str(out)], env).returncode == 0
    assert json.loads(out.read_text()) == json.loads((ROOT / "docs" / "openapi.json").read_text())


def test_downgrade_needs_an_explicit_target(env: dict[str, str]) -> None:
    result = shopcast(["migrate", "--downgrade"], env)
    assert result.returncode == 2 and "--to" in result.stderr
