"""Fault tests run one engine (SQLite) unless the fault is the database's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import Settings
from tests.seaweed import seaweed

__all__ = ["seaweed"]


@pytest.fixture
def node_settings(sqlite_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        public_url="http://shopcast.test",
        ice_host_addresses=["127.0.0.1"],
        # Every test viewer comes from 127.0.0.1, where real ones have addresses of their own.
        auth_burst=100,
        signaling_burst=1000,
    )
