"""SHOPCAST_SFU_NATIVE: which fan-out a process uses, with and without the built extension."""

from __future__ import annotations

import logging

import pytest

from sfu import native
from sfu.lane import Lane


@pytest.fixture(autouse=True)
def restore() -> object:
    yield
    native.configure("auto")


def test_without_the_extension_auto_warns_and_forwards_in_python(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(native, "_module", None)
    monkeypatch.setattr(native, "_active", None)
    with pytest.raises(RuntimeError, match="SHOPCAST_SFU_NATIVE=on"):
        native.configure("on")
    with caplog.at_level(logging.WARNING, logger="sfu.native"):
        assert not native.configure("auto")
    assert "pure-Python path" in caplog.text
    assert native.fan_out() is None and type(native.new_lane(128)) is Lane


def test_off_chooses_python_even_when_the_extension_is_built() -> None:
    assert not native.configure("off")
    assert native.fan_out() is None and type(native.new_lane(1)) is Lane
