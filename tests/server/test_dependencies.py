"""The lockfiles pin every declared dependency, and the libraries whose privates the SFU patches
are pinned exactly in pyproject.toml, in the locks and in the environment alike."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.markers import Marker

from tests.nodes import ROOT

PATCHED = ("aiortc", "aioice", "pylibsrtp")
# Which dependencies each lock must pin: the image's runtime one, `make install`'s dev one.
LOCKS = {"requirements.txt": ("dependencies",), "requirements-dev.txt": ("dependencies", "dev")}
# A requirement's name; an extra or a version range may follow it.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", re.M)
MARKED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)(?: ; ([^\\\n]+?))? \\$", re.M)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict[str, list[str]]:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"dependencies": table["dependencies"], **table["optional-dependencies"]}


def declared(*groups: str) -> set[str]:
    tables = project()
    return {canonical(NAME.findall(line)[0]) for group in groups for line in tables[group]}


def locked(path: Path) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for name, pinned in PIN.findall(path.read_text()):
        pins.setdefault(canonical(name), set()).add(pinned)
    return pins


def test_patched_libraries_are_pinned_at_the_installed_version() -> None:
    pins = dict(re.findall(r"^([\w-]+)==([\w.]+)$", "\n".join(project()["dependencies"]), re.M))
    for name in PATCHED:
        assert name in pins, f"{name} must be pinned with == (sfu/aiortc_hooks.py patches it)"
        assert version(name) == pins[name], (
            f"{name}: installed {version(name)}, pinned {pins[name]}"
        )
        for lock in LOCKS:
            assert locked(ROOT / lock)[name] == {pins[name]}, f"{lock} pins another {name}"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_the_lock_pins_every_declared_dependency_with_hashes(lock: str) -> None:
    text = (ROOT / lock).read_text()
    missing = declared(*LOCKS[lock]) - set(locked(ROOT / lock))
    assert not missing, f"{lock} lacks {sorted(missing)}: run `make lock`"
    requirements = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip())
    unhashed = [line.split()[0] for line in requirements if "--hash=sha256:" not in line]
    assert not unhashed, f"{lock}: no hash for {unhashed}"


def test_both_locks_pin_the_same_versions() -> None:
    runtime, dev = locked(ROOT / "requirements.txt"), locked(ROOT / "requirements-dev.txt")
    assert {name: dev[name] for name in runtime} == runtime


def test_the_environment_is_the_dev_lock() -> None:
    """`make install` installs the dev lock: lint and tests run on exactly the locked releases
    (ruff and mypy included, so a new release of either cannot change `make lint`)."""
    text = (ROOT / "requirements-dev.txt").read_text()
    requirements = MARKED.findall(text)
    assert len(requirements) == len(PIN.findall(text))
    for name, pinned, marker in requirements:
        if not marker or Marker(marker).evaluate():
            assert version(name) == pinned, f"{name}: installed {version(name)}, locked {pinned}"
