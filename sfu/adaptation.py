"""Per-viewer layer selection: the simulcast layer that fits the viewer's own link.

Each room tick, :meth:`Adaptation.tick` feeds the viewer's counters to its
:class:`~sfu.estimator.BandwidthEstimator`, ranks the publisher's layers by their bit rate
and asks the video consumer to switch (at the target layer's keyframe) when another layer
fits. Going up needs evidence the link carries more than the current layer: a **probe**,
RTX padding paced every 20 ms to bring what the viewer receives up to the next layer's rate
for :data:`PROBE_SECONDS`; it stops at the first tick with loss, and at the first receiver
report whose round trip grew by :data:`QUEUE_RISE` over the link's floor (a buffer on the
path absorbed the padding: it queued, the link did not carry it; a cellular link's buffer holds
seconds of a slow layer). It succeeds only on a report that came after it ran its time. One
viewer's choices touch only its own consumer: the publisher keeps sending every layer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence

from .consumer import PADDING_SIZE, Consumer
from .estimator import PROBE_LOSS, UP_MARGIN, BandwidthEstimator, Sample, choose_layer
from .producer import Producer

PROBE_SECONDS = 2.0  # the estimator's window: what it carried is judged on the probe alone
PROBE_PACE = 0.02
REPORT_LAG = 0.5  # a receiver report this soon after a probe starts is about before it
PROBE_QUIET = 2.0  # no congestion for this long before probing
PROBE_BACKOFF = (2.0, 4.0, 8.0, 16.0, 30.0)  # wait after a failed probe (the last repeats)
# A layer reached by a probe must hold this long: leaving it sooner fails the probe after the
# fact. A link's token bucket lets a probe through and then not the layer it asked for (tbf
# with a 20 KB burst on 300 kbit/s: probe, up, congested, down every ~6 s, freezing each time).
RISE_HOLDS = 10.0
PAUSE_AFTER = 3.0  # seconds the lowest layer must not fit before the video pauses
# What a link carries beyond the payload: RTP header and extensions, SRTP tag, UDP and IP
# headers, per packet. An Opus packet of 80 bytes doubles on the wire; a layer's own rate
# (measured on whole RTP packets) grows by about this share.
WIRE_OVERHEAD = 60
LAYER_OVERHEAD = 1.06
LAYER_SILENT = 1.0  # a layer that sent nothing for this long is not chosen
QUEUE_RISE = 0.1  # a round trip this far above the floor: the probe filled a queue
RTT_WINDOW = 10.0  # the floor is the least round trip over this many seconds before a probe


class Adaptation:
    """Chooses the layer of one viewer's video consumer among a track's simulcast layers."""

    def __init__(self, consumer: Consumer, layers: Sequence[Producer]) -> None:
        self.consumer = consumer
        self.layers = tuple(layers)
        self.estimator = BandwidthEstimator(initial=0.0)
        self.target: Producer | None = consumer.producer
        self._counters = (time.monotonic(), 0, 0, 0, 0)
        self.companions: tuple[Consumer, ...] = ()  # the viewer's other tracks (its audio)
        self._probe_until = 0.0
        self._padding_bps = 0.0
        self._probe_bps = 0.0  # what the viewer receives while probing
        self._remb = 0  # the viewer's last REMB
        self._credit = 0.0  # bytes of padding owed to the probe's rate
        self._probe_reported = 0.0  # when a receiver report last told of the probe's padding
        self._round_trips: deque[tuple[float, float]] = deque()  # (when, seconds) outside probes
        self._next_probe = 0.0
        self._failures = 0  # failed probes and rises since a rise last held
        self._raised: tuple[float, int] | None = None  # a rise that must hold: (when, to index)
        self._below_since = 0.0  # since when not even the lowest layer fits (0: it fits)
        self._pacer: asyncio.TimerHandle | None = None

    def ranked(self, now: float) -> list[Producer]:
        """The layers that send (a publisher short of bandwidth stops its upper ones), lowest
        bit rate first."""
        live = [
            p
            for p in self.layers
            if not p.closed and p.smoothed_bps > 0 and now - p.last_arrival < LAYER_SILENT
        ]
        return sorted(live, key=lambda p: p.smoothed_bps)

    def follow(self, layers: Sequence[Producer]) -> None:
        """A new publisher: its layers (one, if it does not simulcast)."""
        self.stop_probe()
        self.layers = tuple(layers)
        self.target = self.consumer.producer

    def on_remb(self, bitrate: int) -> None:
        """A REMB; one that falls below the rate of a running probe ends it as failed: the
        viewer's delay-based detector saw the queue grow, before any packet was lost."""
        now = time.monotonic()
        previous = self._remb
        self._remb = bitrate
        self.estimator.on_remb(now, bitrate)
        if self._probe_until and bitrate < previous * 0.95 and bitrate < self._probe_bps:
            self._fail_probe(now)

    def on_report(self, fraction_lost: float, round_trip: float | None = None) -> None:
        """A receiver report on the video: its loss, and the round trip it measured."""
        now = time.monotonic()
        self.estimator.on_report(now, fraction_lost)
        if round_trip is None:
            return
        trips = self._round_trips
        if not self._probe_until:
            trips.append((now, round_trip))
            while trips[0][0] < now - RTT_WINDOW:
                trips.popleft()
        elif now >= self._probe_until - PROBE_SECONDS + REPORT_LAG and trips:
            queued = round_trip > min(t for _, t in trips) + QUEUE_RISE
            if queued:
                self._fail_probe(now)

    def on_probe_report(self, fraction_lost: float) -> None:
        """A report on the RTX stream: during a probe, whether its padding arrived."""
        now = time.monotonic()
        if not self._probe_until or now < self._probe_until - PROBE_SECONDS + REPORT_LAG:
            return  # no probe, or a report on the time before it
        self._probe_reported = now
        if fraction_lost > PROBE_LOSS:
            self._fail_probe(now)

    def tick(self, now: float) -> None:
        consumer = self.consumer
        if consumer.closed or len(self.layers) < 2:
            self.stop_probe()
            return
        since, sent, packets, lost, others = self._counters
        sent_now = (
            consumer.bytes_sent
            + consumer.packets_sent * WIRE_OVERHEAD
            + consumer.padding_sent * (PADDING_SIZE + WIRE_OVERHEAD)
        )
        others_now = sum(c.bytes_sent + c.packets_sent * WIRE_OVERHEAD for c in self.companions)
        self._counters = (now, sent_now, consumer.packets_sent, consumer.losses, others_now)
        estimator = self.estimator
        seconds = now - since
        estimator.update(
            now,
            Sample(
                seconds,
                sent_now - sent + others_now - others,
                consumer.packets_sent - packets,
                consumer.losses - lost,
            ),
            probing=bool(self._probe_until),
        )
        # The link carries the audio too: a layer fits if it does with the audio beside it.
        beside = (others_now - others) * 8 / seconds if seconds > 0 else 0.0
        if self._probe_until:
            self._end_probe(now)
        layers = self.ranked(now)
        if not layers:
            return
        waiting = consumer.pending or (consumer.producer if consumer.waiting_keyframe else None)
        if waiting is not None:
            if waiting not in layers:
                # Waiting for a layer that sends nothing (a camera too small for it, or the
                # publisher stopped it): the lowest that does, or the one already flowing.
                self.target = layers[0] if consumer.waiting_keyframe else consumer.producer
                consumer.switch(self.target)
            elif consumer.pending is not None:
                consumer.pending.request_keyframe()  # the request may have been lost
            return  # a switch is under way: judge the layer once it flows
        rates = [p.smoothed_bps * LAYER_OVERHEAD + beside for p in layers]
        current = layers.index(self.target) if self.target in layers else None
        if not estimator.estimate and current is not None:
            estimator.estimate = rates[current]  # the starting layer fits until shown otherwise
        choice = choose_layer(rates, estimator.estimate, current)
        if choice is None and current is not None:
            # Pause only when even the lowest layer has not fitted for a while: a few packets
            # lost of a low layer's handful per tick are no reason to stop the picture.
            self._below_since = self._below_since or now
            if now - self._below_since < PAUSE_AFTER:
                choice = current
        else:
            self._below_since = 0.0
        target = None if choice is None else layers[choice]
        self._judge_rise(now, choice)
        if target is not self.target:
            if choice is not None and (current is None or choice > current):
                self._raised = (now, choice)
            self.target = target
            consumer.switch(target)
        elif not self._probe_until and now >= self._next_probe:
            self._maybe_probe(now, rates, current, beside)

    def _maybe_probe(
        self, now: float, rates: list[float], current: int | None, beside: float
    ) -> None:
        higher = 0 if current is None else current + 1
        if higher >= len(rates) or now - self.estimator.congested_at < PROBE_QUIET:
            return
        wanted = rates[higher] * UP_MARGIN * 1.1  # what was carried must clear the margin
        if self.estimator.estimate >= wanted:
            return
        self._probe_bps = wanted
        self._padding_bps = wanted - (rates[current] if current is not None else beside)
        self._probe_until = now + PROBE_SECONDS
        self._probe_reported = 0.0
        self._pace()

    def _pace(self) -> None:
        """Top what the viewer receives up to the probe rate, one 20 ms slice at a time;
        the first packet the viewer reports lost ends the probe as failed."""
        self._pacer = None
        if not self._probe_until or self.consumer.closed:
            return
        if self.consumer.losses > self._counters[3]:
            self._fail_probe(time.monotonic())
            return
        self._credit += self._padding_bps * PROBE_PACE / 8
        count = int(self._credit // PADDING_SIZE)
        self._credit -= count * PADDING_SIZE
        if count:
            self.consumer.send_padding(count)
        self._pacer = asyncio.get_running_loop().call_later(PROBE_PACE, self._pace)

    def _end_probe(self, now: float) -> None:
        estimator = self.estimator
        if estimator.loss > PROBE_LOSS:
            self._fail_probe(now)
        elif now >= self._probe_until and self._probe_reported >= self._probe_until:
            self.stop_probe()
            estimator.probed()
        elif now >= self._probe_until + PROBE_SECONDS:
            self._fail_probe(now)  # the viewer never reported on the padding: no evidence

    def _judge_rise(self, now: float, choice: int | None) -> None:
        """A rise that held :data:`RISE_HOLDS` clears the failures; one left sooner is one."""
        if self._raised is None:
            return
        when, to = self._raised
        if choice is None or choice < to:
            self._raised = None
            self._fail_probe(now)
        elif now - when >= RISE_HOLDS:
            self._raised = None
            self._failures = 0

    def _fail_probe(self, now: float) -> None:
        self.stop_probe()
        self.estimator.probe_failed()
        self._next_probe = now + PROBE_BACKOFF[min(self._failures, len(PROBE_BACKOFF) - 1)]
        self._failures += 1

    def stop_probe(self) -> None:
        self._probe_until = 0.0
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None
