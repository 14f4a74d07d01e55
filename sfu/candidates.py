"""Which addresses the SFU gathers and announces, and trickle ICE fragments (RFC 8840).

aioice skips 127.0.0.1 when it gathers host candidates and otherwise offers every address of
the machine. :func:`gathering_on` makes the gathers started inside it use exactly the
configured addresses instead; gathers elsewhere in the process keep aioice's behaviour. It
works by replacing ``aioice.ice.get_host_addresses`` (looked up by name at gather time) once,
with a function that reads a context variable: tasks started inside the ``with`` block inherit
the setting, nothing else does. The same block binds the process's media ports, if it has
any (:mod:`sfu.ports`, the same mechanism on ``Connection.get_component_candidates``).
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import aioice.ice
from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

from .errors import IceRestartUnsupportedError, SdpError
from .ports import binding_media_ports

_ORIGINAL_GET_HOST_ADDRESSES = aioice.ice.get_host_addresses
_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "sfu_host_addresses", default=None
)
_LOCAL_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ \S+\.local \d+ .*$", re.MULTILINE)


@dataclass(frozen=True)
class IceSettings:
    """ICE configuration of the SFU's own peer connections.

    ``host_addresses``: the addresses to gather on (``None``: aioice's choice, every address of
    the machine but loopback). Tests use ``("127.0.0.1",)``. ``announced_address``: an address
    written into the answer instead of the gathered one (a public IP in front of a 1:1 NAT).
    The SFU never uses STUN/TURN itself: viewers and publishers get those from the API.
    """

    host_addresses: tuple[str, ...] | None = None
    announced_address: str | None = None

    def __post_init__(self) -> None:
        for address in (*(self.host_addresses or ()), *filter(None, [self.announced_address])):
            ipaddress.ip_address(address)  # ValueError on a typo, at startup


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    configured = _HOST_ADDRESSES.get()
    if configured is None:
        return list(_ORIGINAL_GET_HOST_ADDRESSES(use_ipv4, use_ipv6))
    return [
        address
        for address in configured
        if (use_ipv6 if ipaddress.ip_address(address).version == 6 else use_ipv4)
    ]


def install_host_address_hook() -> None:
    """Route aioice's host-address lookup through :func:`gathering_on` (idempotent)."""
    aioice.ice.get_host_addresses = _get_host_addresses


@contextmanager
def gathering_on(addresses: Sequence[str] | None) -> Iterator[None]:
    """Make ICE gathers started in this block use exactly ``addresses`` (``None``: default),
    on this process's media ports (:func:`sfu.ports.serving_media_ports`) if it has any."""
    install_host_address_hook()
    token = _HOST_ADDRESSES.set(None if addresses is None else tuple(addresses))
    try:
        with binding_media_ports():
            yield
    finally:
        _HOST_ADDRESSES.reset(token)


def strip_mdns_candidates(sdp: str) -> str:
    """Drop ``.local`` host candidates: resolving them would send multicast DNS queries.

    Browsers hide their addresses behind mDNS names; the session still connects because the
    browser checks the server's own candidates and the server learns a peer-reflexive one.
    """
    return _LOCAL_CANDIDATE.sub("", sdp).replace("\r\n\r\n", "\r\n")


def announce(sdp: str, gathered: Sequence[str] | None, announced: str | None) -> str:
    """Rewrite the gathered host addresses of an answer to the announced one, those of its
    family only: a dual-stack node behind an IPv4 NAT keeps offering its own IPv6 address."""
    if not announced or not gathered:
        return sdp
    version = ipaddress.ip_address(announced).version
    for address in gathered:
        if ipaddress.ip_address(address).version == version:
            sdp = sdp.replace(f" {address} ", f" {announced} ")
    return sdp


@dataclass(frozen=True)
class TrickleFragment:
    """A parsed ``application/trickle-ice-sdpfrag`` body."""

    ufrag: str | None
    pwd: str | None
    candidates: tuple[RTCIceCandidate, ...]
    end_of_candidates: bool


def parse_trickle_fragment(body: str) -> TrickleFragment:
    """Parse an RFC 8840 fragment; the first media section's mid applies (BUNDLE)."""
    ufrag = pwd = mid = None
    candidates: list[RTCIceCandidate] = []
    end = False
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith("a=ice-ufrag:"):
            ufrag = line[len("a=ice-ufrag:") :]
        elif line.startswith("a=ice-pwd:"):
            pwd = line[len("a=ice-pwd:") :]
        elif line.startswith("a=mid:"):
            mid = mid or line[len("a=mid:") :]
        elif line.startswith("a=candidate:"):
            if ".local " in line:
                continue
            try:
                candidate = candidate_from_sdp(line[len("a=candidate:") :])
                ipaddress.ip_address(candidate.ip)
            except (AssertionError, ValueError, IndexError) as exc:
                raise SdpError(f"bad candidate line: {line[:80]!r}") from exc
            candidates.append(candidate)
        elif line == "a=end-of-candidates":
            end = True
    for candidate in candidates:
        candidate.sdpMid = mid
        candidate.sdpMLineIndex = 0
    return TrickleFragment(ufrag, pwd, tuple(candidates), end)


def check_not_restart(fragment: TrickleFragment, current_ufrag: str | None) -> None:
    """aiortc cannot restart ICE: refuse a fragment carrying new credentials."""
    if fragment.ufrag is not None and fragment.ufrag != current_ufrag:
        raise IceRestartUnsupportedError("ICE restart is not supported")
