"""/metrics as Prometheus expects it: promtool's checks pass on a node with a live show and
orders, and each figure counts what happened."""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
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


DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "shopcast.json"
_NOT_METRICS = {"sum", "rate", "increase", "histogram_quantile"}
_SAMPLES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
    "info": ("_info",),
}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads: what is left of it without label matchers,
    ranges, label lists and function names."""
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    words = re.findall(r"\b[A-Za-z_:][A-Za-z0-9_:]*\b(?!\s*\()", expr)
    return set(words) - _NOT_METRICS


def exposed(exposition: str) -> dict[str, str]:
    """Each sample name a scrape declares (samples or not: a labelled counter never counted
    still has its HELP and TYPE), by its family's name."""
    return {
        family.name + suffix: family.name
        for family in text_string_to_metric_families(exposition)
        for suffix in _SAMPLES.get(family.type, ("",))
    }


def promql_problems(queries: list[str], directory: Path) -> str:
    """What ``promtool check rules`` says of ``queries`` as recording rules (Grafana's
    ``$__rate_interval`` read as 5m); empty when they all parse."""
    binary = shutil.which("promtool")
    assert binary, "promtool is needed (Debian package prometheus; .ci/run installs it)"
    rules = [
        {"record": f"dashboard:query{index}", "expr": query.replace("$__rate_interval", "5m")}
        for index, query in enumerate(queries)
    ]
    path = directory / "dashboard.rules.json"  # JSON is YAML
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [binary, "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    return "" if checked.returncode == 0 else checked.stdout + checked.stderr


async def test_the_grafana_dashboard_reads_only_what_metrics_serves(
    client: Client, tmp_path: Path
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        target["expr"]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]
    assert promql_problems(queries, tmp_path) == ""
    used = set().union(*(metric_names(query) for query in queries))
    served = exposed(await (await client.get("/metrics")).text())
    assert used - served.keys() == set(), "the dashboard queries names /metrics does not serve"
    # prometheus_client writes a counter's or histogram's creation time as a gauge of its own.
    ours = {
        family
        for family in served.values()
        if family.startswith("shopcast_") and not family.endswith("_created")
    }
    assert ours - {served[name] for name in used} == set(), "a Shopcast metric has no panel"
    assert {"process_cpu_seconds_total", "shopcast_ingest_bytes_total"} <= used
