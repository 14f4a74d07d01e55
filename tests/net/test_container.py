"""Shopcast in a container, published like ``docker run -p 8080:8080 -p 50000-50015:...``:
a Chromium publisher and a Chromium phone, each behind its own NAT, meet through it.

    publisher 192.168.1.2                                 viewer 192.168.2.2
         |  (default via .1)                                   |
    192.168.1.1  publisher's NAT box               192.168.2.1  viewer's NAT box
    198.18.2.2   masquerades 192.168.1.0/24        198.18.3.2   masquerades 192.168.2.0/24
         |                                                     |
    198.18.2.1 ------------ "internet" router (forwarding) ---- 198.18.3.1
                                   198.18.1.1
                                       |
                                   198.18.1.2  docker host (forwarding), the public address
                                   172.30.0.1    nftables: DNAT tcp 8080 and udp 50000-50015
                                       |         on the uplink to 172.30.0.10; masquerade of
                                       |         172.30.0.0/24 out of it; forward: nothing
                                       |         else reaches the container
                                   172.30.0.10  container (default via 172.30.0.1): Shopcast
                                                SHOPCAST_ICE_HOST_ADDRESSES=172.30.0.10,
                                                ANNOUNCED_ADDRESS=198.18.1.2,
                                                PORT_RANGE=50000-50015, UDP_MUX

198.18.0.0/15 is the benchmarking range: never a real address. Neither browser can reach the
container's address; media flows only if the SFU binds inside the published range and writes
the host's public address in its answers. SHOPCAST_SFU_WORKERS counts SFU processes, the main
one included: 1 (the compose file's) is the main process alone, 2 adds a worker, which gets
the upper half of the range and talks to the main process over 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.conftest import ARTIFACTS
from tests.conftest import eventually
from tests.faults.netns import LoopThread
from tests.net.hosts import chromium_on, open_show, serve_shopcast, watch_on_phone
from tests.net.internet import Internet

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PUBLIC, CONTAINER = "198.18.1.2", "172.30.0.10"
BASE = f"http://{PUBLIC}:8080"
FIRST_PORT, LAST_PORT = 50000, 50015
MEDIA_PORTS = range(FIRST_PORT, LAST_PORT + 1)


def docker_rules(uplink: str, bridge: str) -> str:
    """What ``docker run -p`` installs on the host, reduced to this one container."""
    ports, to_container = f"{FIRST_PORT}-{LAST_PORT}", f"ip daddr {CONTAINER}"
    return f"""
table ip docker {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{uplink}" tcp dport 8080 dnat to {CONTAINER}
    iifname "{uplink}" udp dport {ports} dnat to {CONTAINER}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 172.30.0.0/24 oifname "{uplink}" masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "{bridge}" oifname "{uplink}" accept
    iifname "{uplink}" oifname "{bridge}" ct status dnat {to_container} tcp dport 8080 accept
    iifname "{uplink}" oifname "{bridge}" ct status dnat {to_container} udp dport {ports} accept
  }}
}}
"""


@dataclass(frozen=True)
class Sites:
    container: str
    publisher: str
    viewer: str


def wire(net: Internet) -> Sites:
    """The topology of the module docstring."""
    router = net.host("inet", forwarding=True)
    docker = net.host("dock", forwarding=True)
    container = net.host("app")
    docker_uplink, _ = net.link(docker, f"{PUBLIC}/24", router, "198.18.1.1/24")
    net.route(docker, "198.18.1.1")
    bridge, _ = net.link(docker, "172.30.0.1/24", container, f"{CONTAINER}/24")
    net.route(container, "172.30.0.1")
    net.nft(docker, docker_rules(docker_uplink, bridge))

    def site(name: str, number: int) -> str:
        box = net.host(f"{name}nat", forwarding=True)
        inside = net.host(name)
        uplink, _ = net.link(box, f"198.18.{number + 1}.2/24", router, f"198.18.{number + 1}.1/24")
        net.route(box, f"198.18.{number + 1}.1")
        net.link(box, f"192.168.{number}.1/24", inside, f"192.168.{number}.2/24")
        net.route(inside, f"192.168.{number}.1")
        net.masquerade(box, f"192.168.{number}.0/24", uplink)
        return inside

    return Sites(container, site("pub", 1), site("view", 2))


@dataclass(frozen=True)
class UdpSocket:
    address: str
    port: int
    pid: int | None  # of the owning process


def udp_sockets(net: Internet, host: str) -> list[UdpSocket]:
    """Every UDP socket of ``host``, as ``ss -uanp`` lists them."""
    sockets = []
    for line in net.exec(host, "ss", "-Huanp").splitlines():
        # State Recv-Q Send-Q Local:Port Peer:Port [users:(("python",pid=..,fd=..))]
        fields = line.split(maxsplit=5)
        address, _, port = fields[3].rpartition(":")
        pid = re.search(r"pid=(\d+)", fields[5] if len(fields) > 5 else "")
        address = address.strip("[]").split("%")[0]
        sockets.append(UdpSocket(address, int(port), int(pid[1]) if pid else None))
    return sockets


def is_loopback(address: str) -> bool:
    return address != "*" and ipaddress.ip_address(address).is_loopback


# The publisher's page: Shopcast's own WHIP client, the fake camera, kept in window.live.
PUBLISH = """async ({ whipUrl, token, iceServers }) => {
  const { publish } = await import("/static/js/webrtc.js");
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  window.live = await publish(whipUrl, token, stream, iceServers);
  return window.live.session;
}"""

# The publisher's selected route: the SFU's address and port as the browser sees them.
PUBLISH_ROUTE = """async () => {
  const stats = new Map();
  (await window.live.pc.getStats()).forEach((report) => stats.set(report.id, report));
  for (const report of stats.values()) {
    if (report.type === "transport" && report.selectedCandidatePairId) {
      const pair = stats.get(report.selectedCandidatePairId);
      const remote = pair && stats.get(pair.remoteCandidateId);
      if (remote && pair.bytesSent > 0) return { remote: remote.address, port: remote.port };
    }
  }
  return null;
}"""


def assert_media_sockets(net: Internet, container: str, processes: int, log: str) -> None:
    """Every UDP socket of the container is either the SFU's internal IPC between its
    processes (on 127.0.0.1, never published) or a media socket inside the published range;
    with the mux, one per SFU process, shared by all its sessions."""
    sockets = udp_sockets(net, container)
    media = [s for s in sockets if not is_loopback(s.address)]
    outside = [s for s in media if s.port not in MEDIA_PORTS]
    assert not outside, (
        f"UDP sockets outside {FIRST_PORT}-{LAST_PORT} (only the SFU's 127.0.0.1 IPC between "
        f"its processes may be): {outside}\nall: {sockets}\n{log}"
    )
    assert 1 <= len({s.port for s in media}) <= processes, f"mux ports: {sockets}"
    owners = [s.pid for s in media]
    assert len(set(owners)) == len(owners), f"a process with two media ports: {sockets}"


@pytest.mark.parametrize("sfu_processes", [1, 2], ids=["compose-shape", "with-a-worker"])
async def test_a_containerised_shopcast_serves_browsers_behind_nats(
    internet: Internet, tmp_path: Path, sfu_processes: int
) -> None:
    sites = wire(internet)
    serve_shopcast(
        internet,
        sites.container,
        tmp_path,
        BASE,
        host="0.0.0.0",  # inside the container, as its image does
        port="8080",
        ice_host_addresses=CONTAINER,
        ice_announced_address=PUBLIC,
        ice_port_range=f"{FIRST_PORT}-{LAST_PORT}",
        ice_udp_mux="true",
        sfu_workers=str(sfu_processes),
    )

    def log_tail() -> str:
        log = tmp_path / "shopcast.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return "\n".join(["--- shopcast.log (tail) ---", *lines[-40:]])

    async def wait(check: Callable[[], Any], within: float, what: str) -> Any:
        try:
            return await eventually(check, within, what)
        except AssertionError:
            raise AssertionError(f"{what}\n{log_tail()}") from None

    # The seller's API calls come from the publisher's side, through its NAT and the DNAT.
    on_publisher = LoopThread(sites.publisher)

    async def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    http = await on_publisher.run(session())
    browsers: list[Browser] = []
    try:
        sid, credentials, _ = await on_publisher.run(open_show(http, BASE, "Container show"))
        assert credentials["whip_url"] == f"{BASE}/whip/{sid}", credentials

        async def live() -> bool:
            async def status() -> Any:
                async with http.get(f"{BASE}/api/v1/streams/{sid}") as response:
                    return (await response.json())["status"]

            return await on_publisher.run(status()) == "live"

        async with async_playwright() as playwright:
            try:
                # getUserMedia needs a secure context; the studio's origin is plain HTTP here.
                secure = f"--unsafely-treat-insecure-origin-as-secure={BASE}"
                browsers.append(await chromium_on(playwright, sites.publisher, tmp_path, secure))
                studio = await (await browsers[-1].new_context(bypass_csp=True)).new_page()
                await studio.goto(f"{BASE}/")
                arguments = {
                    "whipUrl": credentials["whip_url"],
                    "token": credentials["publish_token"],
                    "iceServers": credentials["ice_servers"],
                }
                await studio.evaluate(PUBLISH, arguments)
                await wait(live, 30, "the Chromium publisher's show never turned live")
                route = await wait(
                    lambda: studio.evaluate(PUBLISH_ROUTE), 20, "the publisher sends no media"
                )
                assert route["remote"] == PUBLIC and route["port"] in MEDIA_PORTS, route

                browsers.append(await chromium_on(playwright, sites.viewer, tmp_path))
                phone, state = await watch_on_phone(
                    browsers[-1],
                    f"{BASE}/watch/{sid}",
                    f"the phone behind its NAT never played\n{log_tail()}",
                )
                # The SFU's candidate, as the phone reached it: the host's public address on a
                # published port (the container's own address is not routable from there).
                assert state["route"]["remote"] == PUBLIC, state
                assert state["route"]["port"] in MEDIA_PORTS, state
                ARTIFACTS.mkdir(exist_ok=True)
                shot = ARTIFACTS / f"watch-container-{sfu_processes}sfu.png"
                await phone.screenshot(path=str(shot))

                # Both sessions are up: look at the sockets that carry them.
                assert_media_sockets(internet, sites.container, sfu_processes, log_tail())
                await studio.evaluate("() => window.live?.stop()")
            finally:
                for browser in browsers:
                    await browser.close()
    finally:
        await on_publisher.run(http.close())
        on_publisher.close()
