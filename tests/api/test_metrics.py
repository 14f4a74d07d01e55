"""/metrics as Prometheus expects it: promtool's checks pass on a node with a live show and
orders, and each figure counts what happened."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from importlib.metadata import version
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from api.streaming.hls import RECORDINGS
from peers.webrtc import wait_until
from tests.api.test_commerce import buy
from tests.api.test_signaling import go_live, publish, viewer_stats_ready, wait_status
from tests.conftest import Shop, eventually

Client = TestClient[Any, Any]


def promtool_problems(exposition: str) -> str:
    """What ``promtool check metrics`` says of ``exposition`` (its lint: names, units, types,
    help); empty when it finds nothing."""
    binary = shutil.which("promtool")
    assert binary, "promtool is needed (Debian package prometheus; .ci/run installs it)"
    checked = subprocess.run(
        [binary, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )
    return "" if checked.returncode == 0 else checked.stdout + checked.stderr


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


async def scraped(client: Client, name: str, **labels: str) -> float:
    """One sample of a fresh scrape (0 when it is absent: a counter not yet counted)."""
    text = await (await client.get("/metrics")).text()
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def test_metrics_pass_promtool_with_a_live_show_and_orders(
    client: Client, shop: Shop
) -> None:
    seller, buyer = await shop.account("seller"), await shop.account("viewer")
    product = (await shop.product(seller, stock=1))["id"]
    sid = (await shop.stream(seller, product_ids=[product]))["id"]
    publisher, _ = await publish(client, sid, await go_live(client, seller, sid))
    try:
        await wait_status(client, sid, "live")
        await wait_until(lambda: viewer_stats_ready(client, sid))
        await client.get(f"/api/v1/streams/{sid}")
        await client.get("/api/v1/streams/no-such-show")
        order = await (await buy(client, sid, buyer, product)).json()
        assert (await buy(client, sid, buyer, product)).status == 409  # the one unit is gone
        paid = await client.post(f"/api/v1/orders/{order['id']}/pay", headers=seller.auth)
        assert paid.status == 200, await paid.text()
        tally = client.app[RECORDINGS].tally
        await eventually(lambda: tally.segments >= 2, 30, "no segments recorded")
        response = await client.get("/metrics")
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await response.text()
    finally:
        await publisher.close()
    assert promtool_problems(text) == ""
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "python_info",
        f'shopcast_ingest_bytes_total{{kind="video",layer="",stream="{sid}"}}',
        f'shopcast_ingest_packets_lost_total{{kind="audio",layer="",stream="{sid}"}}',
        "shopcast_webrtc_sessions 1.0",
    ):
        assert name in text, name
    build = {"version": version("shopcast"), "aiortc": "1.16.0"}
    build["python"] = platform.python_version()
    found = samples(text)
    assert found[("shopcast_build_info", frozenset(build.items()))] == 1
    assert found[("shopcast_orders_total", frozenset({("outcome", "reserved")}))] == 1
    assert found[("shopcast_orders_total", frozenset({("outcome", "out_of_stock")}))] == 1
    assert found[("shopcast_order_payments_total", frozenset({("method", "pay_later")}))] == 1
    assert found[("shopcast_recording_segments_total", frozenset())] >= 2
    assert found[("shopcast_recording_segment_bytes_total", frozenset())] > 1000
    durations = re.findall(r"shopcast_http_request_duration_seconds_count\{(.*)\} (\S+)", text)
    routes = {labels: float(count) for labels, count in durations}
    assert routes['method="GET",route="/api/v1/streams/{stream_id}",status="2xx"'] >= 1
    assert routes['method="GET",route="/api/v1/streams/{stream_id}",status="4xx"'] == 1
    assert not any(sid in labels for labels in routes), "ids make no series"
