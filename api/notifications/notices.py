"""What each notice says, the same words on every channel: a headline naming the seller, the
show's title, and for a reminder or a reschedule its start time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api.notifications.models import Notice

HEADLINES = {
    Notice.LIVE: "{seller} is live",
    Notice.REMINDER: "{seller} goes live soon",
    Notice.RESCHEDULED: "{seller} moved a show",
    Notice.CANCELLED: "{seller} cancelled a show",
}
LINKS = {
    Notice.LIVE: "Watch the show",
    Notice.REMINDER: "Open the show",
    Notice.RESCHEDULED: "See the new time",
    Notice.CANCELLED: "See the seller's shows",
}


@dataclass(frozen=True)
class Words:
    headline: str
    title: str
    at: datetime | None  # the start time it announces
    link: str  # what the link does

    @property
    def when(self) -> str:
        """The start time for an email, in UTC: a mail client does not convert it. A push
        carries the time itself, and the device shows it in its own zone."""
        return self.at.strftime("%a %d %b %Y, %H:%M UTC") if self.at else ""

    @property
    def lead(self) -> str:
        """The sentence that opens a message."""
        if self.at is None:
            return f"{self.headline}: {self.title}"
        return f"{self.headline}: {self.title}, starting {self.when}"


def words(kind: Notice, message: dict[str, str]) -> Words:
    at = datetime.fromisoformat(message["at"]) if message.get("at") else None
    return Words(
        HEADLINES[kind].format(seller=message["seller"]),
        message["title"],
        at if kind in (Notice.REMINDER, Notice.RESCHEDULED) else None,
        LINKS[kind],
    )
