"""Signed webhooks to the seller's shop, and the signed callback a shop uses to settle orders.

Events are written to an outbox (``webhook_deliveries``) in the same transaction as the
change that caused them, then sent by a background dispatcher with retries and backoff until
the receiver answers 2xx. The delivery id is the event id (``webhook-id``): a retry carries the
same id, so the receiver can drop a duplicate.

Deliveries are signed the Standard Webhooks way: ``webhook-signature: v1,<base64 HMAC-SHA256 of
"<webhook-id>.<webhook-timestamp>.<body>">``, keyed with the endpoint's secret as shown (its 64
ASCII characters; ``"whsec_" + base64(secret)`` for Standard Webhooks libraries). They also still
carry the deprecated ``Shopcast-Event``, ``Shopcast-Event-Id`` and ``Shopcast-Signature: t=<unix
time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with the same secret; the settle callback is signed
that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook
from yarl import URL

from api.accounts.users import require_role, require_user
from api.catalog.products import SELLERS
from api.db import utcnow
from api.web.context import Context
from api.web.errors import not_found
from api.web.metrics import Metrics
from api.web.outbound import Outbound
from api.web.routing import Api
from api.webhooks.models import WebhookDelivery, WebhookEndpoint
from api.webhooks.schemas import WebhookCreatedOut, WebhookIn, WebhookOut

log = logging.getLogger(__name__)
api = Api()

SIGNATURE = "Shopcast-Signature"
EVENTS = frozenset(
    {
        "order.reserved",
        "order.paid",
        "order.shipped",
        "order.cancelled",  # also a hold that expired, and a paid order refunded
        "stream.live",
        "stream.cancelled",  # a planned show called off
        "stream.ended",
    }
)
"""Every event a seller's endpoints may receive (docs/commerce.md): ``enqueue`` takes no other."""
TOLERANCE_SECONDS = 300
MAX_ATTEMPTS = 12
SEND_SECONDS = 5.0
"""The longest one send may take, connecting included: then it is a failed attempt."""
LEASE_MARGIN_SECONDS = 10.0
"""How much longer than a send a claim lasts: time to commit the claim and record the result."""
CONCURRENCY = 32
"""Sends in flight at once on one node."""
PER_DESTINATION = 2
"""Sends in flight at once on one node to one URL origin (scheme, host and port)."""
PER_SELLER = 8
"""Sends in flight at once on one node for one seller's endpoints."""
CANDIDATES = 4 * CONCURRENCY
"""Due deliveries read per fill, to choose from those whose destination and seller are free."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def standard_signature(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` of Standard Webhooks: keyed with the secret's bytes as shown."""
    return Webhook(secret.encode()).sign(
        delivery_id, datetime.fromtimestamp(timestamp, UTC), body.decode()
    )


def signed_at(header: str) -> int | None:
    """The unix time a ``Shopcast-Signature`` header says it was made at."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        return int(fields["t"])
    except (KeyError, ValueError):
        return None


def verify(secrets_: list[str], header: str, body: bytes, now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with one of ``secrets_``, within the tolerance."""
    timestamp = signed_at(header)
    if timestamp is None:
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return False
    return any(hmac.compare_digest(sign(s, timestamp, body), header) for s in secrets_)


async def enqueue(session: AsyncSession, seller_id: str, event: str, data: dict[str, Any]) -> None:
    """Queue ``event`` (one of ``EVENTS``) for every endpoint of the seller, inside the
    caller's transaction."""
    if event not in EVENTS:
        raise ValueError(f"{event} is not a webhook event: add it to EVENTS and the docs")
    endpoints = await session.scalars(
        select(WebhookEndpoint.id).where(WebhookEndpoint.owner_id == seller_id)
    )
    now = utcnow()
    for endpoint_id in endpoints:
        payload = {"type": event, "created_at": now.isoformat(), "data": data}
        session.add(WebhookDelivery(endpoint_id=endpoint_id, event=event, payload=payload))


@dataclass(frozen=True)
class _Claim:
    """A delivery this node holds until ``lease``, with where it goes and how it is signed."""

    id: str
    event: str
    payload: dict[str, Any]
    attempts: int
    url: str
    secret: str
    seller_id: str
    lease: datetime

    @property
    def destination(self) -> str:
        return str(URL(self.url).origin())


def _due(now: datetime) -> Select[Any]:
    """Due deliveries in turns: each seller's first, then each seller's second, and so on; a
    seller's own in turns across its endpoints, at most ``PER_DESTINATION`` of one endpoint."""
    by_endpoint = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.event,
            WebhookDelivery.payload,
            WebhookDelivery.attempts,
            WebhookDelivery.next_attempt_at,
            WebhookDelivery.created_at,
            WebhookEndpoint.owner_id,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            func.row_number()
            .over(
                partition_by=WebhookDelivery.endpoint_id,
                order_by=(WebhookDelivery.created_at, WebhookDelivery.id),
            )
            .label("endpoint_turn"),
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.delivered_at.is_(None),
            WebhookDelivery.next_attempt_at <= now,
            WebhookDelivery.attempts < MAX_ATTEMPTS,
        )
        .subquery()
    )
    due = by_endpoint.c
    by_seller = (
        select(
            by_endpoint,
            func.row_number()
            .over(partition_by=due.owner_id, order_by=(due.endpoint_turn, due.created_at, due.id))
            .label("turn"),
        )
        .where(due.endpoint_turn <= PER_DESTINATION)
        .subquery()
    )
    turns = by_seller.c
    return select(by_seller).order_by(turns.turn, turns.created_at, turns.id).limit(CANDIDATES)


class Dispatcher:
    """Sends due deliveries, many at once. States: new -> running -> stopped.

    At most ``CONCURRENCY`` sends are in flight on a node, ``PER_DESTINATION`` to one URL
    origin and ``PER_SELLER`` for one seller, and free slots are filled in turns across sellers:
    a seller's slow endpoints hold a few slots, never the node, and never delay another seller's
    events. Slots are filled every ``every`` seconds and as soon as a send finishes.

    Each delivery is claimed before it is sent, by a conditional UPDATE that pushes its next
    attempt past the end of the send (``SEND_SECONDS`` + ``LEASE_MARGIN_SECONDS``); only what
    can start at once is claimed, so no other node sends it while it is in flight. Its result
    is recorded only while the claim is still this node's.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        every: float = 1.0,
        *,
        private_networks: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics or Metrics()
        self._every = every
        self._private_networks = private_networks
        self._http: Outbound | None = None
        self._task: asyncio.Task[None] | None = None
        self._sending: dict[asyncio.Task[None], _Claim] = {}
        self._filling = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = False

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=SEND_SECONDS)
        self._http = Outbound(timeout, private_networks=self._private_networks)
        self._task = asyncio.create_task(self._run(), name="webhook dispatcher")

    async def close(self) -> None:
        """Stop filling slots, let the sends in flight finish, then close the client."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await asyncio.gather(*self._sending)
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._every)
            if self._closing:
                return
            self._wake.clear()
            try:
                await self.send_due()
            except Exception:
                log.exception("sending webhooks failed")

    async def send_due(self) -> int:
        """Claim and start what is due and has a free slot; return how many were started."""
        async with self._filling:
            claims = await self._claim()
            for claim in claims:
                task = asyncio.create_task(self._deliver(claim), name=f"webhook {claim.id}")
                self._sending[task] = claim
                task.add_done_callback(self._sent)
        return len(claims)

    async def _claim(self) -> list[_Claim]:
        free = CONCURRENCY - len(self._sending)
        if free <= 0:
            return []
        destinations = Counter(c.destination for c in self._sending.values())
        sellers = Counter(c.seller_id for c in self._sending.values())
        claims: list[_Claim] = []
        async with self._sessions.begin() as session:
            due = (await session.execute(_due(utcnow()))).all()
            lease = utcnow() + timedelta(seconds=SEND_SECONDS + LEASE_MARGIN_SECONDS)
            for row in due:
                claim = _Claim(
                    row.id,
                    row.event,
                    row.payload,
                    row.attempts,
                    row.url,
                    row.secret,
                    row.owner_id,
                    lease,
                )
                busy = (
                    destinations[claim.destination] >= PER_DESTINATION
                    or sellers[claim.seller_id] >= PER_SELLER
                )
                if busy:
                    continue
                result = await session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == row.id,
                        WebhookDelivery.next_attempt_at == row.next_attempt_at,
                        WebhookDelivery.delivered_at.is_(None),
                    )
                    .values(next_attempt_at=lease)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    claims.append(claim)
                    destinations[claim.destination] += 1
                    sellers[claim.seller_id] += 1
                    if len(claims) == free:
                        break
        return claims

    def _sent(self, task: asyncio.Task[None]) -> None:
        del self._sending[task]
        self._wake.set()

    async def _deliver(self, claim: _Claim) -> None:
        try:
            started = time.perf_counter()
            outcome, error = await self._post(claim)
            self._metrics.webhook_durations.observe(time.perf_counter() - started)
            self._metrics.webhook_deliveries.labels(outcome).inc()
            await self._record(claim, error)
        except Exception:
            log.exception("webhook delivery %s failed", claim.id)

    async def _post(self, claim: _Claim) -> tuple[str, str | None]:
        """The send's outcome (delivered, refused, unreachable) and its error, if any."""
        assert self._http is not None
        body = json.dumps({"id": claim.id, **claim.payload}, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": claim.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_signature(claim.secret, claim.id, timestamp, body),
            "Shopcast-Event": claim.event,
            "Shopcast-Event-Id": claim.id,
            SIGNATURE: sign(claim.secret, timestamp, body),
        }
        try:
            status = await self._http.post(claim.url, body, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return "unreachable", f"{type(exc).__name__}: {exc}"[:500]
        return ("delivered", None) if 200 <= status < 300 else ("refused", f"HTTP {status}")

    async def _record(self, claim: _Claim, error: str | None) -> None:
        now = utcnow()
        attempts = claim.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if error is None:
            values["delivered_at"] = now
        else:
            values["next_attempt_at"] = now + timedelta(seconds=min(3600, 2**attempts))
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == claim.id, WebhookDelivery.next_attempt_at == claim.lease
                )
                .values(values)
            )
        if not result.rowcount:  # type: ignore[attr-defined]
            log.warning("webhook delivery %s: its claim ran out before the result", claim.id)


@api.route(
    "POST",
    "/api/v1/webhooks",
    summary="Add a webhook endpoint",
    tag="webhooks",
    status=201,
    body=WebhookIn,
    response=WebhookCreatedOut,
    errors=(401, 403, 415, 422),
    description="The secret that signs the deliveries is shown once, in this answer. "
    f"Events: {', '.join(sorted(EVENTS))}.",
)
async def create_webhook(ctx: Context, body: WebhookIn) -> WebhookCreatedOut:
    seller = require_role(ctx, SELLERS, "Only sellers receive webhooks")
    endpoint = WebhookEndpoint(owner_id=seller.id, url=body.url, secret=secrets.token_hex(32))
    ctx.session.add(endpoint)
    await ctx.session.flush()
    return WebhookCreatedOut.model_validate(endpoint)


@api.route(
    "GET",
    "/api/v1/webhooks",
    summary="Your webhook endpoints",
    tag="webhooks",
    response=list[WebhookOut],
    errors=(401,),
)
async def list_webhooks(ctx: Context) -> list[WebhookOut]:
    user = require_user(ctx)
    rows = await ctx.session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.owner_id == user.id)
        .order_by(WebhookEndpoint.created_at)
    )
    return [WebhookOut.model_validate(r) for r in rows]


@api.route(
    "DELETE",
    "/api/v1/webhooks/{webhook_id}",
    summary="Remove a webhook endpoint",
    tag="webhooks",
    status=204,
    errors=(401, 404),
)
async def delete_webhook(ctx: Context, webhook_id: str) -> None:
    user = require_user(ctx)
    endpoint = await ctx.session.get(WebhookEndpoint, webhook_id)
    if endpoint is None or endpoint.owner_id != user.id:
        raise not_found("Webhook")
    await ctx.session.delete(endpoint)
