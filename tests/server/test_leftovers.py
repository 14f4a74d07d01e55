"""A test that fails halfway through a multi-node scenario leaves no ``shopcast serve``, nor any
of its SFU worker processes, running: the suite's cleanup stops every node it started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nodes import ROOT

FAILING = """
from pathlib import Path

from tests.nodes import Node


def test_fails_with_two_nodes_up(tmp_path: Path, migrated: str) -> None:
    settings = {"database_url": migrated, "jwt_secret": "a" * 40, "sfu_workers": "2"}
    first = Node(tmp_path / "a", **settings)
    second = Node(tmp_path / "b", **settings)
    Path(GROUPS).write_text(f"{first.process.pid} {second.process.pid}")
    assert False, "a multinode test that fails before its own cleanup"
"""


def _group_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_failing_multinode_test_leaves_no_node_running(tmp_path: Path) -> None:
    groups = tmp_path / "groups"
    test = tmp_path / "test_fails.py"
    test.write_text(FAILING.replace("GROUPS", repr(str(groups))))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(test),
            "-p",
            "tests.conftest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "sqlite",
            "--rootdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "a multinode test that fails" in run.stdout
    started = [int(pid) for pid in groups.read_text().split()]
    assert len(started) == 2
    for group in started:
        assert _group_members(group) == [], f"node {group} or its workers still run"
