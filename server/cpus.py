"""How many CPUs this process may use: the ones it is pinned to, capped by the CPU quota of its
cgroup (a container's ``--cpus``), which ``os.cpu_count()`` counts neither of."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def usable_cpus(cgroup: Path | None = None) -> int:
    """At least 1: the affinity mask's size, or fewer when the quota of ``cgroup`` (this
    process's, as a container sees it) is smaller."""
    pinned = len(os.sched_getaffinity(0))
    quota = _quota(cgroup or CGROUP)
    return max(1, min(pinned, math.ceil(quota)) if quota else pinned)


def _quota(cgroup: Path) -> float | None:
    """CPUs' worth of time per period the cgroup may use (v2 ``cpu.max``, else v1's CFS files),
    or None when unlimited or unknown."""
    v2 = cgroup / "cpu.max"
    if v2.is_file():
        limit, period = v2.read_text().split()
        return None if limit == "max" else int(limit) / int(period)
    v1 = cgroup / "cpu"
    try:
        limit_us = int((v1 / "cpu.cfs_quota_us").read_text())
        period_us = int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return limit_us / period_us if limit_us > 0 and period_us > 0 else None
