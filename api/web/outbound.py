"""Outbound HTTP to addresses users give us (webhooks): one guarded client.

Any account can become a seller and name a webhook URL, so the node must not become a way into
its own network. Every address is checked at connect time, after DNS (a name that resolves to
127.0.0.1 is refused like the literal): loopback, private, link-local, multicast and reserved
addresses, in IPv4, IPv6 and IPv4-mapped forms, are refused unless the operator allows private
networks. Redirects are never followed (a 307 would re-send the signed body elsewhere), and the
answer's body is never read.
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL


class RefusedAddress(aiohttp.ClientConnectionError):
    """The URL's host is, or resolves only to, an address this node must not reach."""


def is_public(address: str) -> bool:
    """Whether ``address`` (an IP literal) is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicResolver(AbstractResolver):
    """DNS that answers only with public addresses."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        public = [entry for entry in found if is_public(entry["host"])]
        if not public:
            raise RefusedAddress(f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._resolver.close()


class Outbound:
    """POSTs to user-given URLs. States: open -> closed (``close``)."""

    def __init__(self, timeout: aiohttp.ClientTimeout, *, private_networks: bool) -> None:
        self._private = private_networks
        connector = aiohttp.TCPConnector(resolver=None if private_networks else PublicResolver())
        self._http = aiohttp.ClientSession(timeout=timeout, connector=connector)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body`` to ``url``; the answer's status (a redirect is an answer, not followed).
        Raises ``aiohttp.ClientError`` or ``TimeoutError`` when it could not be sent."""
        self._check_literal(URL(url))
        async with self._http.post(url, data=body, headers=headers, allow_redirects=False) as r:
            return r.status

    def _check_literal(self, url: URL) -> None:
        # The connector asks no resolver for an IP literal: check it here.
        host = url.raw_host or ""
        if self._private:
            return
        try:
            public = is_public(host.strip("[]"))
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        if not public:
            raise RefusedAddress(f"{host} is not a public address")

    async def close(self) -> None:
        await self._http.close()
