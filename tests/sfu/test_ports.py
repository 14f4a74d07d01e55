"""Port ranges, their split over SFU processes, and the aioice internals sfu.ports relies on."""

from __future__ import annotations

import inspect

import aioice.ice
import pytest
from aioice.candidate import Candidate
from pydantic import ValidationError

from peers.ports import free_range
from server.settings import Settings
from sfu import MediaPorts, PortRange, PortSettings, gathering_on, serving_media_ports
from sfu import ports as sfu_ports
from sfu.ports import ephemeral_ports, process_media_ports

pytestmark = pytest.mark.timeout(20)


def test_ranges_parse_and_split_evenly() -> None:
    assert PortRange.parse("50000-50999") == PortRange(50000, 50999)
    assert PortRange.parse(" 50000 - 50001 ") == PortRange(50000, 50001)
    assert PortRange.parse("50000") == PortRange(50000, 50000)
    assert len(PortRange(50000, 50999)) == 1000
    slices = PortRange(50000, 50009).split(3)
    assert slices == [PortRange(50000, 50003), PortRange(50004, 50006), PortRange(50007, 50009)]
    assert sum(len(s) for s in slices) == 10
    assert PortRange(50000, 50001).split(2) == [PortRange(50000, 50000), PortRange(50001, 50001)]


@pytest.mark.parametrize("text", ["", "50000-", "a-b", "50001-50000", "0-10", "65535-65536"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        PortRange.parse(text)


def test_each_process_needs_a_port() -> None:
    with pytest.raises(ValueError, match="2 ports for 3 SFU processes"):
        PortSettings(port_range=PortRange(50000, 50001), processes=3)
    settings = PortSettings(port_range=PortRange(50000, 50003), processes=2)
    assert settings.slice(0) == PortRange(50000, 50001)
    assert settings.slice(1) == PortRange(50002, 50003)
    assert PortSettings().slice(0) is None
    assert MediaPorts.for_process(PortSettings(), 0) is None


def test_settings_refuse_a_range_too_small_for_the_processes() -> None:
    with pytest.raises(ValidationError, match="1 ports for 2 SFU processes"):
        Settings(_env_file=None, ice_port_range="50000-50000", sfu_workers=2)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="looks like 50000-50999"):
        Settings(_env_file=None, ice_port_range="50000:50010")  # type: ignore[call-arg]
    settings = Settings(_env_file=None, ice_port_range="50000-50003", sfu_workers=2)  # type: ignore[call-arg]
    assert settings.resolved_port_range == PortRange(50000, 50003)
    assert Settings(_env_file=None).resolved_port_range is None  # type: ignore[call-arg]


def test_the_aioice_internals_we_replace_are_there() -> None:
    """sfu.ports redoes ``Connection.get_component_candidates``'s host step: check its shape."""
    original = sfu_ports._ORIGINAL_GET_COMPONENT_CANDIDATES  # aioice's, hooked or not by now
    assert list(inspect.signature(original).parameters) == [
        "self",
        "component",
        "addresses",
        "timeout",
    ]
    source = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "self.get_component_candidates(component=component, addresses=addresses)" in source
    connection = aioice.ice.Connection(ice_controlling=False)
    assert connection._protocols == []
    assert "for protocol in self._protocols" in inspect.getsource(aioice.ice.Connection.close)
    assert "StunProtocol(self)" in inspect.getsource(original)
    assert "self._protocols += host_protocols" in inspect.getsource(original)
    assert {"foundation", "component", "transport", "priority", "host", "port", "type"} <= set(
        inspect.signature(Candidate).parameters
    )
    assert isinstance(connection.local_username, str) and connection.remote_username is None


async def test_only_the_sfus_gathers_bind_the_process_ports() -> None:
    ports = free_range(2)
    async with serving_media_ports(MediaPorts(ports, mux=False)) as served:
        assert process_media_ports() is served
        inside = aioice.ice.Connection(ice_controlling=False)
        outside = aioice.ice.Connection(ice_controlling=False)
        client = aioice.ice.Connection(ice_controlling=False)
        try:
            with gathering_on(["127.0.0.1"]):
                await inside.gather_candidates()
                with ephemeral_ports():
                    await client.gather_candidates()
            await outside.gather_candidates()
            assert [c.port for c in inside.local_candidates] == [ports.first]
            assert all(c.port not in ports for c in client.local_candidates)
            assert all(c.port not in ports for c in outside.local_candidates)
        finally:
            for connection in (inside, outside, client):
                await connection.close()
    assert process_media_ports() is None


async def test_one_process_serves_one_set_of_ports() -> None:
    async with serving_media_ports(MediaPorts(None, mux=True)):
        with pytest.raises(RuntimeError, match="already serves"):
            async with serving_media_ports(MediaPorts(None, mux=True)):
                pass
