"""Durable notification jobs: fan-outs expanded and notifications sent by workers that may
die at any moment (the media jobs' pattern, ``api.catalog.video_jobs``).

Both are rows claimed under a lease (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: inside
the write transaction ``BEGIN IMMEDIATE`` serializes). A fan-out writes a batch of followers'
notifications per transaction and moves its cursor in the same one; notifications are claimed
a batch at a time and sent concurrently, each result recorded only while the claim is still
this worker's. A row whose lease ran out is taken again by any worker, on any node. Every step
awaits the database or the network, so 10,000 followers are many short steps on the event
loop, never one long one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import aiohttp
from sqlalchemy import Table, and_, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.db import utcnow
from api.identity.models import User
from api.notifications.fanout import expand
from api.notifications.links import UnsubscribeLinks
from api.notifications.mail import Mailer, NoticeMail
from api.notifications.models import (
    Channel,
    Fanout,
    JobState,
    Notice,
    Notification,
    PushSubscription,
)
from api.notifications.notices import words
from api.notifications.outcome import SENT, Outcome, refused, retry
from api.notifications.push import Device, WebPush

log = logging.getLogger(__name__)
GONE = frozenset({404, 410})  # the subscription expired or was withdrawn (RFC 8030 section 7.3)


@dataclass(frozen=True)
class NotifierConfig:
    fanout_batch: int = 500  # followers read and written per fan-out transaction
    send_batch: int = 200  # notifications claimed at once
    push_concurrency: int = 64  # pushes in flight at once on a node
    smtp_connections: int = 4  # SMTP connections at once on a node
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    max_attempts: int = 6
    retry_seconds: float = 10.0  # first retry; doubled each try, at most an hour


@dataclass(frozen=True)
class Channels:
    """How this node can send: Web Push always (its VAPID key is made on first start), email
    when SMTP is configured."""

    push: WebPush
    email: Mailer | None

    @property
    def enabled(self) -> frozenset[Channel]:
        return frozenset({Channel.PUSH} | ({Channel.EMAIL} if self.email else set()))


@dataclass
class _Claim:
    id: str
    channel: Channel
    user_id: str
    email: str
    stream_id: str
    seller_id: str
    kind: Notice
    message: dict[str, str]
    sent_to: list[str]
    attempts: int
    devices: list[Device] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


def _runnable(model: type[Fanout] | type[Notification], now: datetime) -> Any:
    queued = model.state == JobState.QUEUED
    if model is Notification:
        queued = and_(queued, Notification.next_attempt_at <= now)
    return or_(queued, and_(model.state == JobState.RUNNING, model.lease_expires_at < now))


class Notifier:
    """Expands fan-outs and sends notifications on this node.

    States: new -> running (``start``) -> closed (``close``). Two loops run: one expands
    fan-outs, one sends; each idles ``poll_seconds`` when it finds nothing to do. ``close``
    lets the step in progress finish: a step is short, and a claim it leaves behind runs out.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        channels: Channels,
        links: UnsubscribeLinks,
        public_url: str,
        config: NotifierConfig,
    ) -> None:
        self._sessions, self._reads = sessions, reads
        self._channels = channels
        self._links = links
        self._public_url = public_url
        self._config = config
        self.name = f"notifier-{secrets.token_hex(6)}"
        self._stop = asyncio.Event()
        self._work = asyncio.Event()  # a fan-out wrote notifications: send at once
        self._tasks: list[asyncio.Task[None]] = []
        self._pushing = asyncio.Semaphore(config.push_concurrency)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(self.expand_one, None), name=f"{self.name} fan-out"),
            asyncio.create_task(self._loop(self.send_batch, self._work), name=f"{self.name} send"),
        ]

    async def close(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []
        await self._channels.push.close()

    async def _loop(self, step: Callable[[], Awaitable[bool]], wake: asyncio.Event | None) -> None:
        while not self._stop.is_set():
            try:
                if await step():
                    continue
            except Exception:
                log.exception("%s: unexpected error", self.name)
            waits = [asyncio.ensure_future(self._stop.wait())]
            if wake is not None:
                wake.clear()
                waits.append(asyncio.ensure_future(wake.wait()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.wait(waits, return_when="FIRST_COMPLETED"), self._config.poll_seconds
                )
            for waiting in waits:
                waiting.cancel()

    # Fan-outs

    async def expand_one(self) -> bool:
        """Claim a fan-out and expand it to its end, a batch per transaction; False if there
        was none to claim."""
        fanout_id = await self._claim_fanout()
        if fanout_id is None:
            return False
        while not self._stop.is_set() and await self._expand_batch(fanout_id):
            self._work.set()
        return True

    async def _claim_fanout(self) -> str | None:
        now = utcnow()
        async with self._reads() as session:
            if (
                await session.scalar(select(Fanout.id).where(_runnable(Fanout, now)).limit(1))
                is None
            ):
                return None
        async with self._sessions.begin() as session:
            fanout = await session.scalar(
                select(Fanout)
                .where(_runnable(Fanout, now))
                .order_by(Fanout.created_at, Fanout.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if fanout is None:
                return None
            if fanout.attempts >= self._config.max_attempts:
                fanout.state = JobState.FAILED
                log.warning(
                    "notification fan-out %s failed after %d tries", fanout.id, fanout.attempts
                )
                return None
            fanout.state, fanout.worker = JobState.RUNNING, self.name
            fanout.attempts += 1
            fanout.lease_expires_at = now + timedelta(seconds=self._config.lease_seconds)
            return fanout.id

    async def _expand_batch(self, fanout_id: str) -> bool:
        """One batch of followers; True while there may be more."""
        async with self._sessions.begin() as session:
            fanout = await session.scalar(
                select(Fanout).where(Fanout.id == fanout_id).with_for_update()
            )
            if fanout is None or fanout.worker != self.name or fanout.state != JobState.RUNNING:
                log.warning("notification fan-out %s: lease lost", fanout_id)
                return False
            batch = await expand(session, fanout, self._channels.enabled, self._config.fanout_batch)
            fanout.cursor = batch.cursor
            fanout.lease_expires_at = utcnow() + timedelta(seconds=self._config.lease_seconds)
            if batch.users < self._config.fanout_batch:
                fanout.state, fanout.worker, fanout.lease_expires_at = JobState.DONE, None, None
            return fanout.state == JobState.RUNNING

    # Notifications

    async def send_batch(self) -> bool:
        """Claim a batch of notifications, send them and record each; False if none was due."""
        claims = await self._claim_notifications()
        if not claims:
            return False
        emails = [c for c in claims if c.channel is Channel.EMAIL]
        pushes = [c for c in claims if c.channel is Channel.PUSH]
        mailed, pushed = await asyncio.gather(
            self._send_emails(emails), asyncio.gather(*(self._push(c) for c in pushes))
        )
        results = dict(mailed) | dict(zip((c.id for c in pushes), pushed, strict=True))
        await self._record(claims, results)
        return True

    async def _claim_notifications(self) -> list[_Claim]:
        now = utcnow()
        async with self._reads() as session:
            due = select(Notification.id).where(_runnable(Notification, now)).limit(1)
            if await session.scalar(due) is None:
                return []
        config = self._config
        async with self._sessions.begin() as session:
            await session.execute(
                update(Notification)
                .where(
                    Notification.state == JobState.RUNNING,
                    Notification.lease_expires_at < now,
                    Notification.attempts >= config.max_attempts,
                )
                .values(state=JobState.FAILED, error="its worker stopped before it finished")
            )
            ids = list(
                await session.scalars(
                    select(Notification.id)
                    .where(_runnable(Notification, now))
                    .order_by(Notification.next_attempt_at, Notification.id)
                    .limit(config.send_batch)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return []
            await session.execute(
                update(Notification)
                .where(Notification.id.in_(ids))
                .values(
                    state=JobState.RUNNING,
                    worker=self.name,
                    attempts=Notification.attempts + 1,
                    lease_expires_at=now + timedelta(seconds=config.lease_seconds),
                )
            )
            return await _claimed(session, ids)

    async def _push(self, claim: _Claim) -> Outcome:
        said = words(claim.kind, claim.message)
        payload = json.dumps(
            {
                "title": said.headline,
                "body": said.title,
                "at": said.at.isoformat() if said.at else None,
                "url": f"{self._public_url}/watch/{claim.stream_id}",
                # a later notice of the show replaces the earlier one on the device
                "tag": f"show-{claim.stream_id}",
                "unsubscribe": self._links.page(
                    self._links.token(claim.user_id, claim.seller_id, Channel.PUSH)
                ),
            }
        ).encode()
        devices = [d for d in claim.devices if d.id not in claim.sent_to]
        results = await asyncio.gather(*(self._push_to(d, payload) for d in devices))
        later: list[str] = []
        for device, result in zip(devices, results, strict=True):
            if result is None:
                claim.sent_to.append(device.id)
            elif result == "gone":
                claim.gone.append(device.id)
            else:
                later.append(result)
        if later:
            return retry("; ".join(later))
        return SENT if claim.sent_to else refused("no device took the notification")

    async def _push_to(self, device: Device, payload: bytes) -> str | None:
        """None: delivered; "gone": the subscription expired; else why to try again."""
        async with self._pushing:
            try:
                status = await self._channels.push.send(device, payload)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return None
        if status in GONE:
            return "gone"
        return f"HTTP {status}"

    async def _send_emails(self, claims: list[_Claim]) -> list[tuple[str, Outcome]]:
        mailer = self._channels.email
        if not claims:
            return []
        if mailer is None:
            return [(c.id, retry("this node sends no email (SMTP is not set)")) for c in claims]
        share = -(-len(claims) // self._config.smtp_connections)
        chunks = [claims[i : i + share] for i in range(0, len(claims), share)]
        sent = await asyncio.gather(
            *(mailer.send([self._mail(c) for c in chunk]) for chunk in chunks)
        )
        return [
            (claim.id, outcome)
            for chunk, outcomes in zip(chunks, sent, strict=True)
            for claim, outcome in zip(chunk, outcomes, strict=True)
        ]

    def _mail(self, claim: _Claim) -> NoticeMail:
        token = self._links.token(claim.user_id, claim.seller_id, Channel.EMAIL)
        return NoticeMail(
            to=claim.email,
            seller=claim.message["seller"],
            words=words(claim.kind, claim.message),
            url=f"{self._public_url}/watch/{claim.stream_id}",
            unsubscribe_page=self._links.page(token),
            one_click=self._links.one_click(token),
        )

    async def _record(self, claims: list[_Claim], outcomes: dict[str, Outcome]) -> None:
        now = utcnow()
        rows = [self._result(c, outcomes[c.id], now) for c in claims]
        table = cast(Table, Notification.__table__)
        statement = (
            update(table)
            .where(
                table.c.id == bindparam("claim_id"),
                table.c.worker == self.name,
                table.c.state == JobState.RUNNING.value,
            )
            .values(
                state=bindparam("new_state"),
                error=bindparam("new_error"),
                sent_to=bindparam("new_sent_to"),
                next_attempt_at=bindparam("new_next"),
                sent_at=bindparam("new_sent_at"),
                worker=None,
                lease_expires_at=None,
            )
        )
        gone = [device for c in claims for device in c.gone]
        async with self._sessions.begin() as session:
            await session.execute(statement, rows)
            if gone:
                await session.execute(delete(PushSubscription).where(PushSubscription.id.in_(gone)))
        if gone:
            log.info("removed %d expired push subscriptions", len(gone))

    def _result(self, claim: _Claim, outcome: Outcome, now: datetime) -> dict[str, Any]:
        state = JobState.DONE if outcome.error is None else JobState.FAILED
        next_at = now
        if outcome.retry and claim.attempts < self._config.max_attempts:
            state = JobState.QUEUED
            delay = min(3600.0, self._config.retry_seconds * 2 ** (claim.attempts - 1))
            next_at = now + timedelta(seconds=delay)
        return {
            "claim_id": claim.id,
            "new_state": state.value,
            "new_error": outcome.error,
            "new_sent_to": claim.sent_to,
            "new_next": next_at,
            "new_sent_at": now if state is JobState.DONE else None,
        }


async def _claimed(session: AsyncSession, ids: list[str]) -> list[_Claim]:
    """The claimed notifications with what sending them needs: the show, the address, the
    devices."""
    rows = await session.execute(
        select(
            Notification.id,
            Notification.channel,
            Notification.user_id,
            Notification.stream_id,
            Notification.sent_to,
            Notification.attempts,
            User.email,
            Fanout.seller_id,
            Fanout.kind,
            Fanout.message,
        )
        .join(Fanout, Fanout.id == Notification.fanout_id)
        .join(User, User.id == Notification.user_id)
        .where(Notification.id.in_(ids))
    )
    claims = [
        _Claim(
            id=row.id,
            channel=Channel(row.channel),
            user_id=row.user_id,
            email=row.email,
            stream_id=row.stream_id,
            seller_id=row.seller_id,
            kind=Notice(row.kind),
            message=row.message,
            sent_to=list(row.sent_to),
            attempts=row.attempts,
        )
        for row in rows
    ]
    pushed = {c.user_id: c for c in claims if c.channel is Channel.PUSH}
    if pushed:
        devices = await session.scalars(
            select(PushSubscription).where(PushSubscription.user_id.in_(pushed))
        )
        for d in devices:
            pushed[d.user_id].devices.append(Device(d.id, d.endpoint, d.p256dh, d.auth))
    return claims
