"""How much one viewer's link carries, and which simulcast layer fits it.

Pure logic, fed by :class:`~sfu.adaptation.Adaptation` once per room tick, so it can be
tested with recorded feedback sequences. The signals are the viewer's own:

- **loss**: the packets it NACKs per packet sent (it NACKs within a round trip), and the
  fraction lost of its receiver reports;
- **delay**: its REMB, the receive-side estimate a browser computes from our abs-send-time
  stamps; it falls only when queueing delay grows (libwebrtc's overuse detector), so a
  REMB that falls below what we send means the link is overused before it drops packets;
- **probes**: padding sent on top of the media at the next layer's rate; a probe the link
  carried without loss raises the estimate to the rate it carried.

The thresholds are GCC's (draft-ietf-rmcat-gcc-02, section 6): above 10 % loss the
estimate falls to what arrived, less 5 % (GCC's ``1 - loss / 2`` per report converges to it
over several reports; a viewer behind a 600 kbit/s link sent 2.5 Mbit/s should leave the top
layer at once; loss is never a reason to raise it); below 2 % it rises to what was carried over
the last four ticks (~2 s). Nothing else lowers it, so a quiet tick (a small frame, a pause)
never moves a viewer down.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

HIGH_LOSS = 0.10
LOW_LOSS = 0.02
PROBE_LOSS = 0.05  # a probe with more loss than this failed
REMB_OVERUSE = 0.85  # a REMB below this share of what we send is an overuse
SIGNAL_FRESH = 2.0  # seconds a REMB or receiver report counts for
UP_MARGIN = 1.15  # a higher layer needs this much headroom over its bitrate
DOWN_MARGIN = 1.0
PAUSE_BELOW = 0.5  # below this share of the lowest layer, the viewer gets audio only
CARRIED_TICKS = 4  # what the link carried is judged over this many ticks
# Loss is judged over the last ticks that sent at least this many packets (at most
# CARRIED_TICKS): the lowest layer sends ~11 packets a tick, and 2 of them NACKed is noise, not
# 18 % loss (on the 300 kbit/s test link such ticks drove the estimate to 23 kbit/s and paused
# a viewer whose link carried the layer twice over).
LOSS_PACKETS = 24  # a top layer sends that many a tick: its loss is judged at once


@dataclass
class Sample:
    """What was sent to the viewer, and what it said, during one tick."""

    seconds: float
    bytes_sent: int
    packets_sent: int
    lost: int  # distinct packets the viewer NACKed


class BandwidthEstimator:
    """The bit rate the link to one viewer carries (``estimate``, bit/s)."""

    def __init__(self, initial: float) -> None:
        self.estimate = initial
        self.sent_bps = 0.0
        self.loss = 0.0
        self.congested_at = -1e9  # when loss or delay last said "too much"
        self._remb: tuple[float, float] | None = None  # (when, bit/s)
        self._window: deque[tuple[float, int]] = deque(maxlen=CARRIED_TICKS)
        self._ticks: deque[Sample] = deque(maxlen=CARRIED_TICKS)  # since loss was last judged
        self._report: tuple[float, float] | None = None  # (when, fraction lost)

    def on_remb(self, now: float, bitrate: float) -> None:
        previous = self._remb[1] if self._remb is not None else 0.0
        self._remb = (now, bitrate)
        falling = bitrate < previous * 0.95
        if falling and bitrate < self.sent_bps * REMB_OVERUSE:
            self.estimate = min(self.estimate, bitrate)
            self.congested_at = now
            self._window.clear()  # what was carried before the overuse is no evidence now

    def on_report(self, now: float, fraction_lost: float) -> None:
        self._report = (now, fraction_lost)

    def update(self, now: float, sample: Sample, *, probing: bool = False) -> None:
        """Take one tick's counters: what was sent and how much of it was lost.

        Loss during a probe fails the probe and lowers nothing: the padding caused it.
        """
        if sample.seconds <= 0:
            return
        self.sent_bps = sample.bytes_sent * 8 / sample.seconds
        self._window.append((sample.seconds, sample.bytes_sent))
        if probing:
            # A probe is judged tick by tick; what its padding made the media lose is its own.
            self._ticks.clear()
            loss = min(1.0, sample.lost / sample.packets_sent) if sample.packets_sent else 0.0
            sent_bps = self.sent_bps
        else:
            self._ticks.append(sample)
            loss, sent_bps = self._recent_loss()
        if self._report is not None and now - self._report[0] <= SIGNAL_FRESH:
            loss = max(loss, self._report[1])
        self.loss = loss
        if probing:
            return
        if loss > HIGH_LOSS:
            self.estimate = min(self.estimate, sent_bps * (1 - loss) * 0.95)
            self.congested_at = now
            self._window.clear()
            self._ticks.clear()  # each loss lowers the estimate once
        elif loss < LOW_LOSS:
            carried = self.carried_bps
            if self._remb is not None and now - self._remb[0] <= SIGNAL_FRESH:
                carried = min(carried, self._remb[1])  # the viewer's own estimate caps a rise
            self.estimate = max(self.estimate, carried)

    def _recent_loss(self) -> tuple[float, float]:
        """The share of packets NACKed and the bit rate sent, over the latest ticks that sent
        :data:`LOSS_PACKETS` packets (or all of those since loss was last judged)."""
        packets = lost = size = 0
        seconds = 0.0
        for tick in reversed(self._ticks):
            packets, lost = packets + tick.packets_sent, lost + tick.lost
            size, seconds = size + tick.bytes_sent, seconds + tick.seconds
            if packets >= LOSS_PACKETS:
                break
        loss = min(1.0, lost / packets) if packets else 0.0
        return loss, size * 8 / seconds

    @property
    def carried_bps(self) -> float:
        """What was sent over the last ticks (~2 s) without high loss: one tick's rate would
        count a keyframe the link's buffer merely absorbed as capacity."""
        seconds = sum(s for s, _ in self._window)
        if len(self._window) < CARRIED_TICKS or seconds <= 0:
            return 0.0
        return sum(b for _, b in self._window) * 8 / seconds

    def probe_failed(self) -> None:
        """What the failed probe's padding made of the last ticks is no evidence of anything."""
        self._window.clear()

    def probed(self) -> None:
        """A probe went through without loss: what it carried fits."""
        self.estimate = max(self.estimate, self.carried_bps)


def choose_layer(rates: Sequence[float], estimate: float, current: int | None) -> int | None:
    """The index of the highest layer that fits ``estimate`` (None: video paused).

    ``rates`` are the layers' bit rates, lowest first; ``current`` the layer forwarded now.
    Going up needs :data:`UP_MARGIN` of headroom, so a layer that just fits is not left and
    retaken at every tick; going down happens as soon as the current layer no longer fits.
    """
    if not rates:
        return None
    fits = [i for i, rate in enumerate(rates) if rate * DOWN_MARGIN <= estimate]
    best = fits[-1] if fits else None
    if current is not None and best is not None and best > current:
        ups = [i for i in range(current + 1, best + 1) if rates[i] * UP_MARGIN <= estimate]
        best = ups[-1] if ups else current
    if best is None:
        # From a higher layer, the lowest first; from the lowest, pause only far below it.
        keep = current is not None and (current > 0 or estimate >= rates[0] * PAUSE_BELOW)
        return 0 if keep else None
    if current is None and rates[0] * UP_MARGIN > estimate:
        return None  # paused: resume only with headroom
    return best
