"""A viewer's link estimate and the layer it fits, replayed from recorded feedback."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import cast

import pytest

from sfu.adaptation import (
    LAYER_SILENT,
    PROBE_BACKOFF,
    PROBE_PACE,
    PROBE_QUIET,
    PROBE_SECONDS,
    QUEUE_RISE,
    RISE_HOLDS,
    Adaptation,
)
from sfu.consumer import PADDING_SIZE
from sfu.estimator import (
    HIGH_LOSS,
    PAUSE_BELOW,
    PROBE_LOSS,
    REMB_OVERUSE,
    SIGNAL_FRESH,
    UP_MARGIN,
    BandwidthEstimator,
    Sample,
    choose_layer,
)

pytestmark = pytest.mark.timeout(30)

MTU = 1200  # bytes of payload per recorded packet


# --- Recorded feedback: ticks of what was sent, REMBs and receiver reports -----------------

Tick = tuple[float, int, int, int]  # seconds, bytes sent, packets sent, packets NACKed


@dataclass(frozen=True)
class Remb:
    bitrate: float


@dataclass(frozen=True)
class Report:
    fraction_lost: float


Event = Tick | Remb | Report


def sent(bps: float, *, loss: float = 0.0, seconds: float = 0.5) -> Tick:
    """A tick that carried ``bps`` of media, ``loss`` of whose packets the viewer NACKed."""
    size = int(bps * seconds / 8)
    packets = max(1, size // MTU)
    return (seconds, size, packets, round(packets * loss))


def replay(
    events: Sequence[Event], estimator: BandwidthEstimator | None = None, start: float = 100.0
) -> tuple[BandwidthEstimator, list[float]]:
    """Feed the events in order; the estimate after each tick."""
    estimator = estimator or BandwidthEstimator(initial=0.0)
    now = start
    estimates = []
    for event in events:
        if isinstance(event, Remb):
            estimator.on_remb(now, event.bitrate)
        elif isinstance(event, Report):
            estimator.on_report(now, event.fraction_lost)
        else:
            seconds, size, packets, lost = event
            now += seconds
            estimator.update(now, Sample(seconds, size, packets, lost))
            estimates.append(estimator.estimate)
    return estimator, estimates


def sustained(bps: float, seconds: float = 3.0, **kwargs: float) -> list[Tick]:
    """``bps`` for ``seconds``, in room ticks of 0.5 s."""
    return [sent(bps, **kwargs)] * round(seconds / 0.5)


def test_a_clean_link_rises_to_what_it_carries() -> None:
    ramp = [tick for bps in (1e6, 2e6, 3e6, 4e6) for tick in sustained(bps, 1.0)]
    estimator, estimates = replay([*ramp, *sustained(5e6)])
    assert all(b >= a for a, b in itertools.pairwise(estimates))  # it only rises
    assert max(estimates) <= 5e6 * 1.001  # never above what was carried
    assert estimates[-1] == pytest.approx(5e6, rel=1e-3)  # and reaches it
    assert 1e6 <= estimates[len(ramp) - 1] < 5e6
    assert estimator.loss == 0 and estimator.congested_at < 0


def test_a_link_cut_to_600k_leaves_the_top_layer_at_the_first_lossy_tick() -> None:
    # 2.5 Mbit/s sent into 600 kbit/s: three packets in four are lost and NACKed.
    estimator, estimates = replay([*sustained(2.5e6), sent(2.5e6, loss=0.75)])
    assert estimates[-2] == pytest.approx(2.5e6, rel=1e-3)
    assert 500e3 < estimates[-1] < 600e3
    assert estimator.congested_at == pytest.approx(103.5)
    assert choose_layer([300e3, 800e3, 2.5e6], estimates[-1], 2) == 0
    # What the lowest layer carries cleanly afterwards does not lower it further.
    _, after = replay(sustained(300e3), estimator, start=103.5)
    assert after == [estimates[-1]] * len(after)


def test_a_slow_layers_few_packets_are_judged_together() -> None:
    # The lowest layer sends ~11 packets a tick: 2 of them NACKed once is not 18 % loss.
    clean, noisy = (0.5, 9000, 11, 0), (0.5, 9000, 11, 2)
    estimator, estimates = replay([*[clean] * 6, noisy])
    assert estimates[-1] == estimates[-2] == pytest.approx(144e3)
    assert estimator.loss < HIGH_LOSS and estimator.congested_at < 0
    # Loss that lasts is loss: over the last LOSS_PACKETS packets, more than a tenth.
    _, lossy = replay([(0.5, 9000, 11, 3)], estimator, start=103.5)
    assert lossy[-1] < estimates[-1] * 0.9


def test_a_receiver_reports_loss_counts_while_it_is_fresh() -> None:
    estimator, _ = replay(sustained(2e6))
    lowered = 2e6 * 0.7 * 0.95
    # Reports every second saying 30 % lost, while the NACKs say nothing.
    _, fresh = replay([Report(0.3), sent(2e6), sent(2e6)] * 3, estimator, start=103.0)
    assert fresh == pytest.approx([lowered] * 6, rel=1e-3)
    assert estimator.congested_at == pytest.approx(106.0)
    # The last report gets older than SIGNAL_FRESH: the NACKs alone count from then on.
    _, stale = replay(sustained(2e6, SIGNAL_FRESH + 3.0), estimator, start=106.0)
    assert stale[0] == pytest.approx(lowered, rel=1e-3)
    assert stale[-1] == pytest.approx(2e6, rel=1e-3)


def test_a_falling_remb_below_what_is_sent_is_an_overuse() -> None:
    estimator, _ = replay([*sustained(2e6), Remb(2.4e6), Remb(1.5e6)])
    assert estimator.estimate == 1.5e6
    assert estimator.congested_at == pytest.approx(103.0)


def test_a_rising_or_high_remb_changes_nothing() -> None:
    estimator, _ = replay(sustained(2e6))
    # It rises, then falls but stays above REMB_OVERUSE of what is sent.
    for bitrate in (2.2e6, 2.6e6, 2e6 * REMB_OVERUSE * 1.05):
        estimator.on_remb(101.0, bitrate)
    assert estimator.estimate == pytest.approx(2e6, rel=1e-3)
    assert estimator.congested_at < 0
    estimator, _ = replay([*sustained(2e6), Remb(1.2e6)])
    assert estimator.estimate == pytest.approx(2e6, rel=1e-3)  # a first REMB sets no trend
    assert estimator.congested_at < 0


def test_after_an_overuse_a_rising_remb_neither_raises_nor_congests() -> None:
    estimator, _ = replay(sustained(2e6))
    estimator.on_remb(103.1, 1.6e6)
    estimator.on_remb(103.3, 1.2e6)
    assert (estimator.estimate, estimator.congested_at) == (1.2e6, 103.3)
    estimator.on_remb(103.5, 1.3e6)
    estimator.on_remb(103.7, 5e6)
    assert (estimator.estimate, estimator.congested_at) == (1.2e6, 103.3)


def test_a_quiet_tick_never_lowers_the_estimate() -> None:
    quiet = [sent(40e3), (0.5, 0, 0, 0), (0.5, 0, 0, 3), (0.0, 10_000, 10, 10), sent(1e6)]
    estimator, _ = replay(sustained(2e6))
    _, estimates = replay([*quiet, *sustained(40e3)], estimator, start=103.0)
    assert estimates == pytest.approx([2e6] * len(estimates), rel=1e-3)
    # Some loss, but under HIGH_LOSS: not a reason to move either way.
    _, estimates = replay([*sustained(2e6), *sustained(2.4e6, loss=HIGH_LOSS * 0.8)])
    assert estimates[-1] == pytest.approx(2e6, rel=1e-3)


def test_loss_during_a_probe_lowers_nothing_and_a_probe_counts_what_it_carried() -> None:
    estimator, _ = replay(sustained(300e3))
    assert estimator.estimate == pytest.approx(300e3, rel=1e-3)
    now = 103.0
    losses = []
    for lost in (0, 0, 20, 0):  # the padding tops 300 kbit/s up to 1 Mbit/s
        now += 0.5
        seconds, size, packets, _ = sent(1e6)
        estimator.update(now, Sample(seconds, size, packets, lost), probing=True)
        losses.append(estimator.loss)
        assert estimator.estimate == pytest.approx(300e3, rel=1e-3)  # judged at the end only
    assert losses[2] > HIGH_LOSS and estimator.congested_at < 0  # seen, but not acted on
    estimator.probed()
    assert estimator.estimate == pytest.approx(1e6, rel=1e-3)


def test_a_failed_probe_is_no_evidence_of_capacity() -> None:
    estimator, _ = replay(sustained(300e3))
    now = 103.0
    for _ in range(3):
        now += 0.5
        seconds, size, packets, _ = sent(1e6)
        estimator.update(now, Sample(seconds, size, packets, 0), probing=True)
    estimator.probe_failed()
    _, after = replay(sustained(300e3), estimator, start=now)
    assert after == pytest.approx([300e3] * len(after), rel=1e-3)


def test_a_lossy_tick_never_raises_the_estimate() -> None:
    """High loss lowers the estimate to what arrived; it is no evidence the link carries more.

    Here the estimate was lowered by a REMB while the old layer still flowed (a switch waits
    for a keyframe), and that layer's next tick lost 12 %.
    """
    events: list[Event] = [*sustained(2e6), Remb(2.2e6), Remb(0.5e6), sent(2e6, loss=0.12)]
    estimator, _ = replay(events)
    assert estimator.estimate <= 0.5e6


# --- choose_layer -------------------------------------------------------------------------

RATES = [300e3, 800e3, 1.5e6]


@pytest.mark.parametrize(
    ("estimate", "current", "expected"),
    [
        pytest.param(1.5e6, 2, 2, id="the-top-layer-just-fits"),
        pytest.param(1.49e6, 2, 1, id="down-as-soon-as-it-does-not-fit"),
        pytest.param(799e3, 2, 0, id="down-several-layers-at-once"),
        pytest.param(800e3 * UP_MARGIN * 0.99, 0, 0, id="up-needs-headroom"),
        pytest.param(800e3 * UP_MARGIN, 0, 1, id="up-with-headroom"),
        pytest.param(1.5e6 * UP_MARGIN, 0, 2, id="up-several-layers-at-once"),
        pytest.param(1.6e6, 0, 1, id="up-as-far-as-the-headroom-goes"),
        pytest.param(1.6e6, 1, 1, id="top-layer-fits-but-without-headroom"),
        pytest.param(299e3, 0, 0, id="lowest-layer-kept-above-the-pause"),
        pytest.param(300e3 * PAUSE_BELOW, 0, 0, id="lowest-layer-kept-at-the-pause"),
        pytest.param(300e3 * PAUSE_BELOW * 0.99, 0, None, id="paused-below"),
        pytest.param(300e3 * PAUSE_BELOW * 0.99, 2, 0, id="from-the-top-the-lowest-first"),
        pytest.param(300e3 * PAUSE_BELOW * 0.99, 1, 0, id="from-above-the-lowest-first"),
        pytest.param(300e3 * 0.6, 2, 0, id="from-the-top-to-the-lowest"),
        pytest.param(300e3 * 0.6, None, None, id="paused-stays-paused-without-the-lowest"),
        pytest.param(300e3, None, None, id="paused-resumes-only-with-headroom"),
        pytest.param(300e3 * UP_MARGIN, None, 0, id="paused-resumes"),
    ],
)
def test_choose_layer(estimate: float, current: int | None, expected: int | None) -> None:
    assert choose_layer(RATES, estimate, current) == expected


def test_choose_layer_without_layers_pauses() -> None:
    assert choose_layer([], 10e6, None) is None


# --- Adaptation: one viewer's layer, with fake layers and a fake consumer -----------------


@dataclass(eq=False)
class FakeLayer:
    """What Adaptation reads of a layer's Producer."""

    name: str
    smoothed_bps: float
    last_arrival: float = 0.0
    closed: bool = False
    keyframe_requests: int = 0

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1


@dataclass(eq=False)
class FakeConsumer:
    """What Adaptation reads of, and asks from, the viewer's video Consumer."""

    producer: FakeLayer | None
    closed: bool = False
    bytes_sent: int = 0
    padding_sent: int = 0
    packets_sent: int = 0
    losses: int = 0
    pending: FakeLayer | None = None
    waiting_keyframe: bool = False
    switches: list[FakeLayer | None] = field(default_factory=list)
    paddings: list[int] = field(default_factory=list)

    def switch(self, producer: FakeLayer | None) -> None:
        self.switches.append(producer)
        self.pending = producer  # until its keyframe: see keyframe()

    def keyframe(self) -> None:
        """The pending layer's keyframe arrived: it is forwarded now."""
        self.producer, self.pending = self.pending, None

    def send_padding(self, count: int) -> int:
        self.paddings.append(count)
        return count


class Link:
    """A viewer's link, ticked as the room ticks: what went out and what it NACKed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, rates: Sequence[float], start: int):
        self.now = 1000.0
        monkeypatch.setattr("sfu.adaptation.time", SimpleNamespace(monotonic=lambda: self.now))
        self.layers = [FakeLayer(name, rate) for name, rate in zip("qhf", rates, strict=False)]
        self.consumer = FakeConsumer(self.layers[start])
        self.adaptation = Adaptation(self.consumer, self.layers)  # type: ignore[arg-type]

    def tick(
        self,
        *,
        loss: float = 0.0,
        padding_bps: float = 0.0,
        seconds: float = 0.5,
        silent: Sequence[FakeLayer] = (),
        padding_report: float | None = None,
        round_trip: float | None = None,
    ) -> None:
        """``seconds`` of the forwarded layer (and ``padding_bps`` of probe), then a tick.

        ``padding_report``: the fraction lost of a receiver report on the RTX stream (the
        padding's) that arrives just before the tick; ``round_trip``: the round trip of a
        report on the video that arrives with it.
        """
        self.now += seconds
        if round_trip is not None:
            self.adaptation.on_report(0.0, round_trip)
        if padding_report is not None:
            self.adaptation.on_probe_report(padding_report)
        for layer in self.layers:
            if layer not in silent:
                layer.last_arrival = self.now
        consumer = self.consumer
        media = consumer.producer.smoothed_bps if consumer.producer is not None else 0.0
        size = int(media * seconds / 8)
        packets = max(1, size // MTU)
        consumer.bytes_sent += size
        consumer.packets_sent += packets
        consumer.losses += round(packets * loss)
        consumer.padding_sent += int(padding_bps * seconds / 8 / PADDING_SIZE)
        self.adaptation.tick(self.now)

    async def probe_bps(self) -> float:
        """The padding rate of the probe under way, over its first 20 ms slices."""
        await asyncio.sleep(10 * PROBE_PACE)
        paddings = self.consumer.paddings
        return sum(paddings) * PADDING_SIZE * 8 / (len(paddings) * PROBE_PACE)


LinkFactory = Callable[[int], Link]


@pytest.fixture
def link_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[LinkFactory]:
    """A link whose viewer starts on layer ``start`` of :data:`RATES`."""
    made: list[Link] = []

    def make(start: int) -> Link:
        link = Link(monkeypatch, RATES, start)
        made.append(link)
        return link

    yield make
    for link in made:
        link.adaptation.stop_probe()


async def test_a_lossy_tick_switches_down_and_waits_for_the_switch(link_at: LinkFactory) -> None:
    link = link_at(2)
    q, h, _ = link.layers
    link.tick()
    link.tick()
    assert link.consumer.switches == [] and link.consumer.paddings == []  # top: nothing to probe
    link.tick(loss=0.3)
    assert link.consumer.switches == [h] and link.adaptation.target is cast(object, h)
    link.tick(loss=0.6)  # f still flows until h's keyframe: no decision meanwhile, not even q
    assert link.consumer.switches == [h]
    assert h.keyframe_requests == 1  # asked again each tick, in case the request was lost
    link.consumer.keyframe()
    link.tick()  # h flows: now the loss of the last tick counts
    assert link.consumer.switches == [h, q]
    link.consumer.keyframe()
    for _ in range(round(PROBE_QUIET / 0.5) - 2):
        link.tick()
    assert link.consumer.paddings == []  # congested less than PROBE_QUIET ago: no probe
    link.tick()
    assert link.consumer.paddings  # PROBE_QUIET after the last loss: probing for h


async def test_a_quiet_clean_link_is_probed_at_the_next_layers_rate(link_at: LinkFactory) -> None:
    link = link_at(0)
    q, h, _ = link.layers
    link.tick()
    assert link.consumer.paddings, "a clean link on the lowest layer probes for the next"
    probe = await link.probe_bps()
    assert h.smoothed_bps * UP_MARGIN <= q.smoothed_bps + probe
    assert q.smoothed_bps + probe <= h.smoothed_bps * UP_MARGIN * 1.25
    assert 5 <= len(link.consumer.paddings) <= 12  # one slice every PROBE_PACE


async def test_a_quiet_clean_link_probes_and_switches_up_after_probe_seconds(
    link_at: LinkFactory,
) -> None:
    link = link_at(0)
    _, h, _ = link.layers
    link.tick()
    probe = await link.probe_bps()
    ticks = round(PROBE_SECONDS / 0.5)
    for _ in range(ticks - 1):
        link.tick(padding_bps=probe, padding_report=0.0)
        assert link.consumer.switches == [], "switched up before the probe ended"
    link.tick(padding_bps=probe, padding_report=0.0)
    assert link.consumer.switches == [h]


async def test_a_probe_succeeds_only_on_a_report_from_after_it_ran_its_time(
    link_at: LinkFactory,
) -> None:
    link = link_at(0)
    _, h, _ = link.layers
    link.tick()
    probe = await link.probe_bps()
    for _ in range(round(PROBE_SECONDS / 0.5) - 1):
        link.tick(padding_bps=probe, padding_report=0.0)
    link.tick(padding_bps=probe)  # the probe's time is up; the last report is from before
    assert link.consumer.switches == []
    link.tick(padding_bps=probe, padding_report=0.0)
    assert link.consumer.switches == [h]


async def test_a_probe_the_link_only_queued_fails_on_the_round_trip(link_at: LinkFactory) -> None:
    link = link_at(0)
    link.adaptation.on_report(0.0, 0.040)  # the link's floor, before any probe
    link.tick(round_trip=0.045)
    probe = await link.probe_bps()
    link.tick(padding_bps=probe, padding_report=0.0, round_trip=0.040 + QUEUE_RISE * 0.8)
    paced = len(link.consumer.paddings)
    await asyncio.sleep(3 * PROBE_PACE)
    assert len(link.consumer.paddings) > paced  # jitter within QUEUE_RISE: still probing
    # A buffer on the path took the padding without loss; the delay it added shows it.
    link.tick(padding_bps=probe, padding_report=0.0, round_trip=0.040 + QUEUE_RISE * 1.5)
    paced = len(link.consumer.paddings)
    await asyncio.sleep(5 * PROBE_PACE)
    assert len(link.consumer.paddings) == paced  # stopped
    for _ in range(round(PROBE_SECONDS / 0.5)):
        link.tick(padding_report=0.0)
    assert link.consumer.switches == []
    assert link.adaptation.estimator.estimate < RATES[1] * UP_MARGIN


async def _rise(link: Link) -> float:
    """Tick until a probe starts, then through it, clean: the viewer switches up. Returns how
    long it waited for the probe."""
    started, before, switches = link.now, len(link.consumer.paddings), len(link.consumer.switches)
    for _ in range(round(60 / 0.5)):
        link.tick()
        if len(link.consumer.paddings) > before:
            break
    waited = link.now - started
    probe = await link.probe_bps()
    for _ in range(round(PROBE_SECONDS / 0.5)):
        link.tick(padding_bps=probe, padding_report=0.0)
    assert len(link.consumer.switches) == switches + 1
    link.consumer.keyframe()
    return waited


async def test_a_rise_the_link_cannot_hold_fails_its_probe_after_the_fact(
    link_at: LinkFactory,
) -> None:
    link = link_at(0)
    q, h, _ = link.layers
    await _rise(link)
    waits = []
    for _ in range(3):
        assert link.consumer.producer is h
        link.tick(loss=0.3)  # h does not fit after all: the probe went through a burst allowance
        assert link.consumer.switches[-1] is q
        link.consumer.keyframe()
        waits.append(await _rise(link))
    # Each failed rise waits longer before the next probe, as a failed probe does.
    assert waits == pytest.approx(list(PROBE_BACKOFF[:3]), abs=0.5)


async def test_a_rise_that_held_clears_the_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(monkeypatch, RATES[:2], 0)  # two layers: on the upper one nothing is probed

    async def leave_and_rise() -> float:
        link.tick(loss=0.3)
        link.consumer.keyframe()
        return await _rise(link)

    try:
        await _rise(link)
        assert await leave_and_rise() == pytest.approx(PROBE_BACKOFF[0])  # one failed rise
        for _ in range(round(RISE_HOLDS / 0.5)):
            link.tick()  # this rise holds: the failure is forgotten
        await leave_and_rise()  # congested after it held: the link changed, no failure
        # A rise that fails now is the first again: without the hold it would be the second.
        assert await leave_and_rise() == pytest.approx(PROBE_BACKOFF[0])
    finally:
        link.adaptation.stop_probe()


async def test_the_probe_stops_when_the_viewer_switches_up(link_at: LinkFactory) -> None:
    link = link_at(0)
    _, h, _ = link.layers
    link.tick()
    probe = await link.probe_bps()
    for _ in range(round(PROBE_SECONDS / 0.5) + 1):
        link.tick(padding_bps=probe, padding_report=0.0)
        if link.consumer.switches:
            break
    assert link.consumer.switches == [h]
    paced = len(link.consumer.paddings)
    await asyncio.sleep(5 * PROBE_PACE)
    # The padding was sized to top the lowest layer up to h's rate: on top of h, it would
    # send half as much again as the link was shown to carry.
    assert len(link.consumer.paddings) == paced


async def test_a_probe_the_viewer_never_reported_on_is_no_evidence(link_at: LinkFactory) -> None:
    link = link_at(0)
    link.tick()
    probe = await link.probe_bps()
    for _ in range(round(2 * PROBE_SECONDS / 0.5) - 1):
        link.tick(padding_bps=probe)  # no receiver report names the RTX stream
        assert link.consumer.switches == []
        assert link.adaptation.estimator.estimate < 800e3
    paced = len(link.consumer.paddings)
    link.tick(padding_bps=probe)
    await asyncio.sleep(5 * PROBE_PACE)
    assert len(link.consumer.paddings) == paced  # given up
    assert link.consumer.switches == []


async def test_a_report_of_lost_padding_fails_the_probe_at_once(link_at: LinkFactory) -> None:
    link = link_at(0)
    link.tick()
    await link.probe_bps()
    # A report at once describes the time before the probe: its loss is not the padding's.
    link.adaptation.on_probe_report(0.5)
    before = len(link.consumer.paddings)
    await asyncio.sleep(3 * PROBE_PACE)
    assert len(link.consumer.paddings) > before  # still probing
    link.now += 0.5
    link.adaptation.on_probe_report(PROBE_LOSS * 1.2)
    paced = len(link.consumer.paddings)
    await asyncio.sleep(5 * PROBE_PACE)
    assert len(link.consumer.paddings) == paced  # stopped
    link.tick(seconds=0.0)
    assert link.consumer.switches == []


async def test_a_probe_with_loss_stops_and_backs_off(link_at: LinkFactory) -> None:
    link = link_at(0)
    link.tick()
    probe = await link.probe_bps()
    link.tick(padding_bps=probe, loss=0.06)  # over PROBE_LOSS, under HIGH_LOSS
    paced = len(link.consumer.paddings)
    await asyncio.sleep(5 * PROBE_PACE)
    assert len(link.consumer.paddings) == paced  # stopped
    for backoff in PROBE_BACKOFF[:2]:
        for _ in range(round(backoff / 0.5) - 1):
            link.tick()
            assert len(link.consumer.paddings) == paced, "probed again before the backoff"
        link.tick()
        assert len(link.consumer.paddings) == paced + 1  # probing again
        link.tick(padding_bps=probe, loss=0.06)
        paced = len(link.consumer.paddings)
    assert link.consumer.switches == []


async def test_the_loss_a_probe_causes_fails_it_and_moves_the_viewer_nowhere(
    link_at: LinkFactory,
) -> None:
    link = link_at(1)
    link.tick()
    probe = await link.probe_bps()  # for f, on top of h
    link.tick(padding_bps=probe, loss=0.6)  # the padding overfilled the link's queue
    paced = len(link.consumer.paddings)
    await asyncio.sleep(5 * PROBE_PACE)
    assert len(link.consumer.paddings) == paced
    assert link.consumer.switches == []  # h carried fine before the padding: it stays
    assert link.adaptation.estimator.congested_at < 0


async def test_a_loss_reported_during_a_probe_stops_its_padding_at_once(
    link_at: LinkFactory,
) -> None:
    link = link_at(0)
    link.tick()
    await asyncio.sleep(2 * PROBE_PACE)
    link.consumer.losses += 1  # the viewer NACKed a packet while the padding flows
    await asyncio.sleep(2 * PROBE_PACE)
    paced = len(link.consumer.paddings)
    await asyncio.sleep(5 * PROBE_PACE)
    assert len(link.consumer.paddings) == paced
    for _ in range(round(PROBE_BACKOFF[0] / 0.5) - 1):
        link.tick()
    assert len(link.consumer.paddings) == paced  # backing off
    link.tick()
    assert len(link.consumer.paddings) == paced + 1
    assert link.consumer.switches == []


async def test_a_layer_that_stops_sending_is_left_and_not_probed_for(
    link_at: LinkFactory,
) -> None:
    link = link_at(1)
    q, h, f = link.layers
    link.tick(silent=[f])
    link.tick(seconds=LAYER_SILENT, silent=[f])
    assert link.consumer.paddings == []  # f is silent: h is the top of what is sent
    link.tick(silent=[h, f])
    link.tick(seconds=LAYER_SILENT, silent=[h, f])
    assert link.consumer.switches == [q]  # h went silent: the viewer gets what is sent


async def test_a_falling_remb_switches_down_before_any_loss(link_at: LinkFactory) -> None:
    """A REMB under what is sent is the overuse GCC's delay detector sees before loss."""
    link = link_at(2)
    _, h, f = link.layers
    for _ in range(6):  # f has flowed cleanly for a while
        link.tick()
    link.adaptation.on_remb(int(f.smoothed_bps * 1.1))
    link.adaptation.on_remb(int(h.smoothed_bps * 1.1))  # the link carries about 880 kbit/s
    link.tick()  # f flows on, loss-free for now: the queue grows
    assert link.consumer.switches == [h]


def test_a_fresh_remb_caps_what_a_clean_link_is_said_to_carry() -> None:
    """Carried without loss is evidence only up to what the viewer itself estimates."""
    estimator, estimates = replay([Remb(1e6), *sustained(2e6, 2.0)])
    assert estimates[-1] == pytest.approx(1e6)
    # Stale, the REMB no longer caps: the link's own record counts.
    _, later = replay(sustained(2e6, SIGNAL_FRESH + 1.0), estimator, start=200.0)
    assert later[-1] == pytest.approx(2e6, rel=1e-3)


async def test_a_falling_remb_ends_a_probe_before_any_loss(link_at: LinkFactory) -> None:
    """The viewer's delay-based estimate falling under the probe's rate: the queue grows."""
    link = link_at(0)
    link.tick()
    padding = await link.probe_bps()
    link.adaptation.on_remb(int(padding * 3))  # high and steady: the probe goes on
    await asyncio.sleep(3 * PROBE_PACE)
    paced = len(link.consumer.paddings)
    assert paced > 0
    link.adaptation.on_remb(int(padding * 0.5))
    await asyncio.sleep(5 * PROBE_PACE)
    assert len(link.consumer.paddings) == paced  # stopped at once
    link.tick()
    assert link.consumer.switches == []  # a failed probe is no reason to go up
