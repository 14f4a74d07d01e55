"""/metrics as Prometheus expects it: promtool's checks pass on a node with a live show."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import CONTENT_TYPE_LATEST

from peers.webrtc import wait_until
from tests.api.test_signaling import go_live, publish, viewer_stats_ready, wait_status
from tests.conftest import Shop

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


async def test_metrics_pass_promtool_with_a_live_show(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    publisher, _ = await publish(client, sid, await go_live(client, seller, sid))
    try:
        await wait_status(client, sid, "live")
        await wait_until(lambda: viewer_stats_ready(client, sid))
        await client.get(f"/api/v1/streams/{sid}")
        await client.get("/api/v1/streams/no-such-show")
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
        'shopcast_build_info{version="',
        f'shopcast_ingest_bytes_total{{kind="video",layer="",stream="{sid}"}}',
        f'shopcast_ingest_packets_lost_total{{kind="audio",layer="",stream="{sid}"}}',
        "shopcast_webrtc_sessions 1.0",
    ):
        assert name in text, name
    durations = re.findall(r"shopcast_http_request_duration_seconds_count\{(.*)\} (\S+)", text)
    routes = {labels: float(count) for labels, count in durations}
    assert routes['method="GET",route="/api/v1/streams/{stream_id}",status="200"'] >= 1
    assert routes['method="GET",route="/api/v1/streams/{stream_id}",status="404"'] == 1
    assert not any(sid in labels for labels in routes), "ids make no series"
