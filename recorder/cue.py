"""Timed metadata: product cues rendered as EXT-X-DATERANGE (RFC 8216bis section 4.4.5.1)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PRODUCT_CLASS = "com.shopcast.product"
_CLIENT_ATTRIBUTE = re.compile(r"^X-[A-Z0-9-]+$")
_FORBIDDEN_IN_QUOTES = re.compile(r'["\r\n]')

AttributeValue = str | int | float


def format_date(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as EXT-X-PROGRAM-DATE-TIME and START-DATE use."""
    if moment.tzinfo is None:
        raise ValueError("datetimes in playlists must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def quoted(value: str) -> str:
    if _FORBIDDEN_IN_QUOTES.search(value):
        raise ValueError(f"quoted-string values cannot hold quotes or line breaks: {value!r}")
    return f'"{value}"'


def _attribute(value: AttributeValue) -> str:
    # Strings are quoted-strings; numbers are decimal-floating-point (no exponent form).
    if isinstance(value, bool):
        raise ValueError("booleans are not HLS attribute values")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("attribute numbers must be finite")
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return quoted(value)


@dataclass(frozen=True, slots=True)
class Cue:
    """One date range on the recording's timeline: a product pin, unpin or tag.

    `attributes` are client attributes and must be named X-…; `duration` (seconds) or
    `end` is optional (an open range lasts until a later cue says otherwise).
    """

    id: str
    start: datetime
    class_: str = PRODUCT_CLASS
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    duration: float | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        quoted(self.id), quoted(self.class_), format_date(self.start)
        for name, value in self.attributes.items():
            if not _CLIENT_ATTRIBUTE.match(name):
                raise ValueError(f"client attribute names must match X-[A-Z0-9-]+: {name!r}")
            _attribute(value)
        if self.duration is not None and self.duration < 0:
            raise ValueError("duration must not be negative")
        if self.end is not None and self.end < self.start:
            raise ValueError("end must not precede start")

    def to_tag(self) -> str:
        parts = [
            f"ID={quoted(self.id)}",
            f"CLASS={quoted(self.class_)}",
            f'START-DATE="{format_date(self.start)}"',
        ]
        if self.end is not None:
            parts.append(f'END-DATE="{format_date(self.end)}"')
        if self.duration is not None:
            parts.append(f"DURATION={_attribute(float(self.duration))}")
        parts.extend(f"{name}={_attribute(value)}" for name, value in self.attributes.items())
        return "#EXT-X-DATERANGE:" + ",".join(parts)

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "start": self.start.isoformat(),
                "class": self.class_,
                "attributes": dict(self.attributes),
                "duration": self.duration,
                "end": None if self.end is None else self.end.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, line: str) -> Cue:
        data: dict[str, Any] = json.loads(line)
        end = data.get("end")
        return cls(
            id=data["id"],
            start=datetime.fromisoformat(data["start"]),
            class_=data.get("class", PRODUCT_CLASS),
            attributes=data.get("attributes") or {},
            duration=data.get("duration"),
            end=None if end is None else datetime.fromisoformat(end),
        )
