"""What became of one send, on any channel."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """Sent (no error), refused for good (an error), or to try again later (``retry``)."""

    error: str | None = None
    retry: bool = False


SENT = Outcome()


def retry(error: str) -> Outcome:
    return Outcome(error[:500], retry=True)


def refused(error: str) -> Outcome:
    return Outcome(error[:500])
