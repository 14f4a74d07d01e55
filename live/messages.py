"""What the control side tells the node that carries a show's media, over the bus."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from live.states import FINISHED
from recorder import Cue
from twins.bus import Message


@dataclass(frozen=True)
class StatusChanged(Message, kind="stream.status"):
    """A show moved to ``status`` (one of ``live.states.StreamStatus``)."""

    stream_id: str
    status: str

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class CueAdded(Message, kind="cue"):
    """A product pinned, unpinned or tagged on the show's timeline (a ``pin_events`` row)."""

    stream_id: str
    id: int
    action: str
    product_id: str
    at: str
    x: float | None
    y: float | None
    price_cents: int

    def to_cue(self) -> Cue:
        """The cue as the recording writes it: an EXT-X-DATERANGE with product attributes."""
        attributes: dict[str, str | int | float] = {
            "X-PRODUCT-ID": self.product_id,
            "X-ACTION": self.action,
            "X-PRICE-CENTS": self.price_cents,
        }
        if self.x is not None and self.y is not None:
            attributes |= {"X-X": float(self.x), "X-Y": float(self.y)}
        return Cue(
            id=f"cue-{self.id}", start=datetime.fromisoformat(self.at), attributes=attributes
        )
