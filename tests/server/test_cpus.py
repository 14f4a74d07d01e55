"""SFU workers are counted from the CPUs this process may use, not from the machine's."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cpus import usable_cpus
from server.settings import Settings


@pytest.fixture
def pinned_to_four(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr("os.cpu_count", lambda: 64)


@pytest.mark.usefixtures("pinned_to_four")
@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({}, 4),
        ({"cpu.max": "max 100000\n"}, 4),
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "800000 100000\n"}, 4),
        ({"cpu.max": "1000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
    ],
    ids=["no cgroup", "v2 unlimited", "v2 1.5", "v2 above affinity", "v2 tiny", "v1 1", "v1 -1"],
)
def test_affinity_capped_by_the_cgroup_quota(
    tmp_path: Path, files: dict[str, str], cpus: int
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert usable_cpus(tmp_path) == cpus


@pytest.mark.usefixtures("pinned_to_four")
def test_sfu_workers_default_to_the_usable_cpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    monkeypatch.setattr("server.cpus.CGROUP", tmp_path)
    assert Settings(_env_file=None).resolved_sfu_workers == 2
    assert Settings(_env_file=None, sfu_workers=3).resolved_sfu_workers == 3
