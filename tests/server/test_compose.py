"""docker-compose.yml is the README's production path: it must hang together with the code.

`docker compose config` validates it where a Compose v2 binary exists (skipped elsewhere, with
the reason). The rest needs no Docker: every SHOPCAST_* variable is a real setting and parses,
the published media ports are the SFU's port range, the SFU gathers on the container's own
fixed address and trusts exactly the proxy's.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.settings import Settings
from sfu.ports import PortRange

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
DOTENV = {
    "SHOPCAST_DOMAIN": "shop.example.com",
    "PUBLIC_IP": "203.0.113.10",
    "TURN_DOMAIN": "turn.example.com",
    "TURN_SECRET": "0123456789abcdef0123456789abcdef",
    "SHOPCAST_JWT_SECRET": "0123456789abcdef0123456789abcdef",
    "POSTGRES_PASSWORD": "secret",
}


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def substituted(value: str) -> str:
    """``value`` as Compose reads it with ``DOTENV`` as the .env file."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in DOTENV:
            return DOTENV[name]
        assert kind == "-", f"{name} must be set in .env: {rest}"
        return rest

    return _VARIABLE.sub(one, value)


def app_settings(environment: dict[str, Any]) -> Settings:
    """The settings an app service's SHOPCAST_* environment makes."""
    values = {
        name.removeprefix("SHOPCAST_").lower(): substituted(str(raw))
        for name, raw in environment.items()
    }
    return Settings(_env_file=None, **values)


def published_udp(service: dict[str, Any]) -> PortRange:
    (mapping,) = [p for p in service["ports"] if str(p).endswith("/udp")]
    outside, inside = str(mapping).removesuffix("/udp").split(":")
    assert outside == inside, "the container's ports are published unchanged"
    return PortRange.parse(inside)


@pytest.mark.parametrize("name", ["app", "app-b"])
def test_each_app_node_publishes_its_media_ports_and_gathers_on_its_address(name: str) -> None:
    services = compose()["services"]
    service = {**services["app"], **services[name]}
    settings = app_settings({**services["app"]["environment"], **service["environment"]})
    assert settings.ice_udp_mux
    assert PortRange.parse(settings.ice_port_range) == published_udp(service)
    address = service["networks"]["default"]["ipv4_address"]
    assert settings.ice_host_addresses == [address]
    assert settings.ice_announced_address == DOTENV["PUBLIC_IP"]
    subnet = ipaddress.ip_network(compose()["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(address) in subnet
    proxy = services["proxy"]["networks"]["default"]["ipv4_address"]
    assert settings.trusted_proxies == [proxy]
    assert any(url.startswith("turns:") for url in settings.ice_servers), "TURN over TLS"
    assert "8080" not in str(service.get("ports")), "the app is reached through the proxy only"


def test_coturn_serves_udp_tcp_and_tls() -> None:
    coturn = compose()["services"]["coturn"]
    published = {str(p) for p in coturn["ports"]}
    assert {"3478:3478/udp", "3478:3478/tcp", "5349:5349/tcp"} <= published
    assert "--tls-listening-port=5349" in coturn["command"]


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker binary here: `docker compose config` cannot run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker has no Compose v2 plugin here")
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in DOTENV.items()))
    done = subprocess.run(
        [docker, "compose", "--env-file", str(env), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_images_are_pinned_and_dependencies_wait_for_health() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if "build" not in service:  # else this repository's own image
            _, _, tag = service["image"].rpartition(":")
            assert tag and tag != "latest" and tag[0].isdigit(), f"{name}: pin a version"
        for needed, condition in (service.get("depends_on") or {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} on {needed}"
            assert "healthcheck" in services[needed], f"{needed} has no healthcheck"
    for name in ("app", "app-b"):
        assert services[name]["init"] is True, "signals reach shopcast; SFU workers are reaped"
        # The recorder's close waits up to 30 s for a show's last segment and its upload.
        assert seconds(services[name]["stop_grace_period"]) > 30


def seconds(duration: str) -> float:
    """A Compose duration such as ``45s`` or ``1m30s``."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([hms])", duration))
