"""A show's recording as the database keeps it: whether it is wanted, cut short, published."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.shows.models import Stream
from live.states import StreamStatus


class Replays:
    """``live.recordings.Replays`` over the ``streams`` table."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], reads: async_sessionmaker[AsyncSession]
    ) -> None:
        self._sessions = sessions
        self._reads = reads

    async def wanted(self, stream_id: str) -> bool:
        async with self._reads() as session:
            return bool(
                await session.scalar(select(Stream.record_stream).where(Stream.id == stream_id))
            )

    async def truncated(self, stream_id: str) -> None:
        await self._set(stream_id, recording_truncated=True)

    async def published(
        self,
        stream_id: str,
        vod_url: str,
        thumbnail_url: str | None,
        media: tuple[datetime, datetime] | None,
    ) -> None:
        replay: dict[str, object] = {"vod_url": vod_url, "thumbnail_url": thumbnail_url}
        if media is not None:
            replay["recording_started_at"] = media[0]
        # One transaction: whoever sees the replay sees the show's end moved with it.
        async with self._sessions.begin() as session:
            await session.execute(update(Stream).where(Stream.id == stream_id).values(**replay))
            if media is not None:
                # A show its node's death cut short ended with its last media, not when a node
                # noticed.
                await session.execute(
                    update(Stream)
                    .where(Stream.id == stream_id, Stream.status == StreamStatus.INTERRUPTED)
                    .values(ended_at=media[1])
                )

    async def _set(self, stream_id: str, **values: object) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(Stream).where(Stream.id == stream_id).values(**values))
