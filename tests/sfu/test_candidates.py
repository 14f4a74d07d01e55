"""Host addresses the SFU gathers on, mDNS candidates, trickle fragments."""

from __future__ import annotations

import aioice.ice
import pytest

from peers.webrtc import wait_until
from sfu import IceRestartUnsupportedError, IceSettings, SdpError, gathering_on
from sfu.candidates import (
    announce,
    install_host_address_hook,
    parse_trickle_fragment,
    strip_mdns_candidates,
)

from .conftest import Harness

pytestmark = pytest.mark.timeout(30)


def test_gathering_on_applies_only_inside_the_block() -> None:
    install_host_address_hook()
    default = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    assert "127.0.0.1" not in default
    with gathering_on(["127.0.0.1", "::1"]):
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == default


def test_ice_settings_reject_bad_addresses() -> None:
    with pytest.raises(ValueError):
        IceSettings(host_addresses=("not-an-ip",))


async def test_answers_offer_only_the_configured_address(harness: Harness) -> None:
    _, publisher = await harness.publish()
    answer = publisher.pc.localDescription.sdp
    hosts = {line.split()[4] for line in answer.splitlines() if line.startswith("a=candidate:")}
    assert hosts == {"127.0.0.1"}


def test_announced_address_replaces_the_gathered_one() -> None:
    line = "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host"
    assert "203.0.113.7 40000" in announce(line, ("10.0.0.5",), "203.0.113.7")
    assert announce(line, ("10.0.0.5",), None) == line


def test_an_announced_address_replaces_its_own_family_only() -> None:
    # Dual stack behind an IPv4 NAT: the IPv6 address is public already and stays as it is.
    sdp = (
        "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n"
        "a=candidate:2 1 udp 2130706431 2001:db8::5 40002 typ host\r\n"
    )
    both = ("10.0.0.5", "2001:db8::5")
    assert announce(sdp, both, "203.0.113.7") == sdp.replace("10.0.0.5", "203.0.113.7")
    assert announce(sdp, both, "2001:db8::99") == sdp.replace("2001:db8::5", "2001:db8::99")


def test_mdns_candidates_are_dropped() -> None:
    sdp = (
        "a=mid:0\r\na=candidate:1 1 udp 2122260223 3f1c2b7e-1.local 50000 typ host\r\n"
        "a=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host\r\n"
    )
    stripped = strip_mdns_candidates(sdp)
    assert ".local" not in stripped and "127.0.0.1 50001" in stripped


def test_trickle_fragment_parsing() -> None:
    fragment = parse_trickle_fragment(
        "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\nm=audio 9 RTP/AVP 0\r\n"
        "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
        "a=candidate:2 1 udp 2122260223 abc.local 5001 typ host\r\na=end-of-candidates\r\n"
    )
    assert fragment.ufrag == "abcd" and fragment.end_of_candidates
    assert [(c.ip, c.port, c.sdpMid) for c in fragment.candidates] == [("127.0.0.1", 5000, "0")]
    with pytest.raises(SdpError):
        parse_trickle_fragment("a=candidate:garbage\r\n")


async def test_trickle_and_ice_restart_on_a_session(harness: Harness) -> None:
    peer, publisher = await harness.publish()
    await wait_until(lambda: publisher.live)
    ufrag = peer.pc.localDescription.sdp.split("a=ice-ufrag:")[1].split()[0]
    await publisher.add_ice_candidates(
        f"a=ice-ufrag:{ufrag}\r\na=mid:0\r\n"
        "a=candidate:9 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
    )
    with pytest.raises(IceRestartUnsupportedError):
        await publisher.add_ice_candidates(
            "a=ice-ufrag:zzzz\r\na=ice-pwd:0123456789012345678901\r\n"
        )
    assert not publisher.closed
