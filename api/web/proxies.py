"""The client's address behind the operator's reverse proxies (`SHOPCAST_TRUSTED_PROXIES`).

Rate limits key on the client's address. Behind a TLS proxy every connection comes from the
proxy, so without this every visitor would share one allowance. A proxy appends the address it
received the request from to ``X-Forwarded-For``; reading that header from right to left, the
first address that is not one of the trusted proxies is the client. A request whose peer is not
a trusted proxy keeps its peer address, whatever its headers claim: anyone can send the header.
aiohttp-remotes offers the two halves of this but not together (its filtered mode trusts the
header from any peer, its strict mode needs an exact number of hops, refusing direct requests).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from api.web.errors import Handler

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str | None, forwarded_for: str, proxies: Sequence[Network]) -> str | None:
    """The client's address: ``peer``, or the nearest untrusted hop of ``X-Forwarded-For``."""
    if peer is None or not proxies or not _trusted(peer, proxies):
        return peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage in the header: the proxy's own address, not a guess
    return peer


def forwarded_for(proxies: Sequence[Network]) -> Middleware:
    """Middleware giving handlers the client's address as ``request.remote``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = ",".join(request.headers.getall("X-Forwarded-For", []))
        remote = client_address(request.remote, header, proxies)
        if remote is not None and remote != request.remote:
            request = request.clone(remote=remote)
        return await handler(request)

    return middleware
