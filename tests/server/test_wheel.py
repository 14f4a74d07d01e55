"""``pip install .`` as an operator does it: the wheel alone serves the pages and the API."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.nodes import ROOT, Node

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LIBRARY = re.compile(r'"(/static/node_modules/[^"]+)"')


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    argv = [str(part) for part in command]
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fresh_venv(tmp_path: Path) -> Path:
    """A venv that sees this one's dependencies (a path line, so the editable checkout's own
    ``.pth`` is not processed) but holds nothing of Shopcast until the wheel is installed."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    ours = Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))
    (ours / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def page_libraries() -> set[str]:
    pages = [*(ROOT / "static").glob("*.html"), *(ROOT / "static" / "js").glob("*.js")]
    return {match for page in pages for match in LIBRARY.findall(page.read_text())}


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_the_installed_wheel_migrates_and_serves_pages_and_spec(tmp_path: Path) -> None:
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path, ROOT, cwd=ROOT)
    (wheel,) = tmp_path.glob("shopcast-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in archive.namelist())
    venv = fresh_venv(tmp_path)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    run(*pip, "install", "--no-deps", "-q", wheel, cwd=tmp_path)
    where = run(python, "-c", "import api.web.pages as p; print(p.STATIC_DIR)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv)
    if shutil.which(shlex.split(sysconfig.get_config_var("CC") or "cc")[0]):
        # The build hook compiled the native fan-out into the wheel, and the SFU takes it.
        probe = "import sfu._fanout as f, sfu.native as n; print(f.__file__, n.active())"
        built, active = run(python, "-c", probe, cwd=tmp_path).split()
        assert Path(built).is_relative_to(venv) and active == "True"

    data = tmp_path / "data"
    env = {**os.environ, "SHOPCAST_DATA_DIR": str(data)}
    run(venv / "bin" / "shopcast", "migrate", cwd=tmp_path, env=env)
    node = Node(
        data,
        command=[str(venv / "bin" / "shopcast"), "serve"],
        cwd=tmp_path,
        sfu_workers="1",
        ice_host_addresses="127.0.0.1",
    )
    try:
        for path in ("/", "/watch/x", *sorted(page_libraries())):
            status, body = fetch(node.url + path)
            assert status == 200 and body, path
        status, spec = fetch(node.url + "/api/openapi.json")
        assert status == 200
        assert json.loads(spec)["openapi"].startswith("3.1")
    finally:
        node.stop()
    assert node.process.returncode is not None
