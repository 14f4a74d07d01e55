import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.streaming.hls import RECORDINGS
from server.app import build_app
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_embedded_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.resolved_database_url == "sqlite+aiosqlite:///data/shopcast.db"
    assert settings.resolved_media_dir == Path("data/media")
    assert settings.resolved_public_url == "http://127.0.0.1:8080"
    assert settings.redis_url == ""
    wildcard = Settings(_env_file=None, host="0.0.0.0", port=9000)
    assert wildcard.resolved_public_url == "http://127.0.0.1:9000"


def test_environment_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "SHOPCAST_PORT=9000\nSHOPCAST_CORS_ORIGINS=https://a.example, https://b.example\n"
    )
    monkeypatch.setenv("SHOPCAST_ICE_SERVERS", "stun:127.0.0.1:3478")
    monkeypatch.setenv("SHOPCAST_PUBLIC_URL", "https://live.example/")
    settings = Settings()
    assert settings.port == 9000
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.ice_servers == ["stun:127.0.0.1:3478"]
    assert settings.resolved_public_url == "https://live.example"


def test_jwt_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(_env_file=None, data_dir=tmp_path).ensure_jwt_secret()
    again = Settings(_env_file=None, data_dir=tmp_path).ensure_jwt_secret()
    assert first == again and len(first) >= 32
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="32 characters"):
        Settings(_env_file=None, jwt_secret="short")
    with pytest.raises(ValidationError):
        Settings(_env_file=None, ice_host_addresses=["127.0.0.300"])
    for origin in ("https://shop.example/", "https://a.example; script-src *", "shop.example"):
        with pytest.raises(ValidationError, match="is not an origin"):
            Settings(_env_file=None, cors_origins=[origin])
    monkeypatch.setenv("SHOPCAST_PORT", "eighty")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_hls_dvr_window_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).hls_dvr_seconds == 4 * 3600
    monkeypatch.setenv("SHOPCAST_HLS_DVR_SECONDS", "600")
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert settings.hls_dvr_seconds == 600
    assert build_app(settings)[RECORDINGS].config.dvr_seconds == 600, "recorders get it"
    for bad in ("5", "14401", "an hour"):
        monkeypatch.setenv("SHOPCAST_HLS_DVR_SECONDS", bad)
        with pytest.raises(ValidationError):
            Settings(_env_file=None)
    refused = subprocess.run(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env={**os.environ, "SHOPCAST_DATA_DIR": str(tmp_path), "SHOPCAST_HLS_DVR_SECONDS": "5"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and "hls_dvr_seconds" in refused.stderr
