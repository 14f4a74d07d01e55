"""``make bench``: every benchmark at a load and at twice that load, then one table.

    python -m bench [--quick]

Each benchmark runs in its own process (they start their own servers and load every core);
their full output goes by as they run, and their key figures (the ``figures:`` line each
prints) are tabulated at the end with the trend as the load doubles. ``--quick`` halves the
loads and the measuring windows, for a first look.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from bench import FIGURES


@dataclass(frozen=True)
class Run:
    title: str  # what runs
    load: str  # how much of it
    module: str
    args: tuple[str, ...]
    show: tuple[str, ...]  # figures to put in the table


def runs(quick: bool) -> list[tuple[Run, Run]]:
    """Pairs of runs: a load, then twice that load."""
    n = 1 if quick else 2
    window = "8" if quick else "15"

    def sfu(viewers: int, workers: int) -> Run:
        return Run(
            f"SFU, {workers} process{'es' if workers > 1 else ''}",
            f"{viewers} viewers",
            "bench.sfu",
            ("--viewers", str(viewers), "--workers", str(workers), "--seconds", window),
            ("per_core", "total", "marginal_us", "loss_max_pct", "ttff_p50_ms"),
        )

    def chat(viewers: int) -> Run:
        return Run(
            "Chat, 20 lines/s",
            f"{viewers} viewers",
            "bench.chat",
            ("--viewers", str(viewers), "--rate", "20", "--seconds", window),
            ("deliveries_per_s", "deliveries_per_cpu_s", "lost", "p99_ms"),
        )

    def mux(viewers: int) -> Run:
        return Run(
            "SFU, ICE ports: random, a range, one mux port",
            f"{viewers} viewers",
            "bench.mux",
            ("--viewers", str(viewers), "--seconds", str(int(window) // 2)),
            ("marginal_us_random", "marginal_us_mux", "mux_over_random", "routed_ns"),
        )

    def hls(players: int) -> Run:
        return Run(
            "LL-HLS behind live (hls.js in Chromium)",
            f"{players} player{'s' if players > 1 else ''}",
            "bench.hls_latency",
            ("--settings", "watch", "--viewers", str(players), "--seconds", str(int(window) * 2)),
            ("p50_s", "p90_s", "wall_p50_s", "stalls"),
        )

    def layers(viewers: int) -> Run:
        return Run(
            "SFU forwarding path: one layer, abs-send-time, three layers",
            f"{viewers} viewers",
            "bench.layers",
            ("--viewers", str(viewers), "--packets", str(750 * n)),
            ("kernel_floor", "one_layer", "one_layer_with_abs_send_time", "three_layers"),
        )

    def fan_out(viewers: int) -> Run:
        return Run(
            "SFU fan-out, native and Python, beside the sendto and sendmmsg floors",
            f"{viewers} viewers on one socket",
            "bench.native",
            ("--viewers", str(viewers), "--packets", str(300 * n), "--shared"),
            ("native_us", "python_us", "floor_sendmmsg_us", "native_per_core"),
        )

    def janus(viewers: int) -> Run:
        return Run(
            "SFU beside Janus 1.1.2 (streaming plugin: one event loop, default)",
            f"{viewers} viewers",
            "bench.janus",
            ("--viewers", str(viewers), "--seconds", window),
            (
                "shopcast_native_us",
                "shopcast_native_mux_us",
                "shopcast_python_us",
                "janus_one_loop_us",
                "janus_default_us",
                "shopcast_native_mux_over_janus_best",
            ),
        )

    def switch(viewers: int) -> Run:
        return Run(
            "Layer switch (PLI, keyframe, fan-out; 50 ms publisher round trip)",
            f"{viewers} viewers switching at once",
            "bench.switch",
            ("--viewers", str(viewers), "--switches", str(10 * n)),
            ("switch_ms", "switch_p90_ms", "sfu_share_ms"),
        )

    def auctions(engine: str, bidders: int) -> Run:
        return Run(
            f"Auction bids, {engine}",
            f"{bidders} bidders",
            "bench.auctions",
            ("--engine", engine, "--bidders", str(bidders)),
            ("ack_p99_ms", "floor_p99_ms", "war_accepted_per_s", "war_ack_p99_ms"),
        )

    def orders(engine: str, buyers: int) -> Run:
        return Run(
            f"Orders for 10 units, {engine}",
            f"{buyers} buyers",
            "bench.orders",
            ("--engine", engine, "--buyers", str(buyers), "--units", "10"),
            ("orders", "requests_per_s", "p99_ms"),
        )

    def notifications(engine: str, followers: int) -> Run:
        return Run(
            f"Go-live emails, {engine}",
            f"{followers} followers",
            "bench.notifications",
            ("--engine", engine, "--followers", str(followers)),
            ("notifications_per_s", "lag_p99_ms", "lag_worst_ms", "idle_p99_ms"),
        )

    def soak(shows: int) -> Run:
        return Run(
            "Soak: show and viewer churn (RSS and fds over time)",
            f"{shows} shows at a time",
            "bench.soak",
            ("--shows", str(shows), "--minutes", str(1.5 * n), "--interval", "15"),
            ("shows", "rss_mb_per_min", "rss_mb_per_show", "fds_per_min", "fds_end"),
        )

    return [
        (sfu(25 * n, 1), sfu(50 * n, 1)),
        (sfu(50 * n, 2), sfu(100 * n, 2)),
        (mux(10 * n), mux(20 * n)),
        (layers(100 * n), layers(200 * n)),
        (fan_out(500 * n), fan_out(1000 * n)),
        (janus(25 * n), janus(50 * n)),
        (switch(50 * n), switch(100 * n)),
        (chat(125 * n), chat(250 * n)),
        (hls(n), hls(2 * n)),
        (orders("sqlite", 250 * n), orders("sqlite", 500 * n)),
        (orders("postgresql", 250 * n), orders("postgresql", 500 * n)),
        (auctions("sqlite", 250 * n), auctions("sqlite", 500 * n)),
        (auctions("postgresql", 250 * n), auctions("postgresql", 500 * n)),
        (notifications("sqlite", 5000 * n), notifications("sqlite", 10000 * n)),
        (soak(n), soak(2 * n)),
    ]


def execute(run: Run) -> dict[str, Any]:
    print(f"\n=== {run.title}, {run.load}: python -m {run.module} {' '.join(run.args)}", flush=True)
    process = subprocess.Popen(
        [sys.executable, "-m", run.module, *run.args], stdout=subprocess.PIPE, text=True
    )
    figures: dict[str, Any] = {}
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(FIGURES):
            figures = json.loads(line[len(FIGURES) :])
        else:
            print(line, end="", flush=True)
    if process.wait() != 0 or not figures:
        print(f"!!! {run.title}, {run.load}: failed (exit {process.returncode})", flush=True)
    return figures


def trend(low: Any, high: Any) -> str:
    if isinstance(low, int | float) and isinstance(high, int | float) and low:
        return f"x{high / low:.2f}"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="half the loads and windows")
    args = parser.parse_args()
    results = [(pair, execute(pair[0]), execute(pair[1])) for pair in runs(args.quick)]
    print("\n| run | figure | load | value | 2x load | value | trend |")
    print("|---|---|---|---|---|---|---|")
    for (low_run, high_run), low, high in results:
        for name in low_run.show:
            a, b = low.get(name), high.get(name)
            print(
                f"| {low_run.title} | {name} | {low_run.load} | {a} "
                f"| {high_run.load} | {b} | {trend(a, b)} |"
            )


if __name__ == "__main__":
    main()
