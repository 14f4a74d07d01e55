"""`shopcast serve --tls`: HTTPS with a self-signed certificate made in the data dir, and HSTS."""

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.server.test_cli import ROOT, free_port


def test_serve_tls_makes_a_certificate_and_sends_hsts(tmp_path: Path, migrated: str) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "SHOPCAST_DATA_DIR": str(data), "SHOPCAST_DATABASE_URL": migrated}
    env.pop("SHOPCAST_PUBLIC_URL", None)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--tls", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/studio", timeout=2, context=insecure
                ) as response:
                    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
                    break
            except OSError:
                assert time.monotonic() < deadline, "server did not come up"
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.2)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert server.returncode == 0, output
    assert (data / "tls-cert.pem").exists() and (data / "tls-key.pem").exists()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    (serving,) = [line for line in lines if line["event"] == "serving"]
    assert serving["url"].startswith("https://") and serving["url"].endswith(f":{port}"), serving
