"""Signed webhooks to the seller's shop, and the signed callback a shop uses to settle orders.

Events are written to an outbox (``webhook_deliveries``) in the same transaction as the
change that caused them, then sent by a background dispatcher with retries and backoff until
the receiver answers 2xx. The delivery id is the event id (``Shopcast-Event-Id``): a retry
carries the same id, so the receiver can drop a duplicate. Signature: ``Shopcast-Signature:
t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the endpoint's secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.accounts.users import require_role, require_user
from api.catalog.products import SELLERS
from api.db import utcnow
from api.web.context import Context
from api.web.errors import not_found
from api.web.outbound import Outbound
from api.web.routing import Api
from api.webhooks.models import WebhookDelivery, WebhookEndpoint
from api.webhooks.schemas import WebhookCreatedOut, WebhookIn, WebhookOut
from twins.periodic import Periodic

log = logging.getLogger(__name__)
api = Api()

SIGNATURE = "Shopcast-Signature"
TOLERANCE_SECONDS = 300
MAX_ATTEMPTS = 12
SEND_TIMEOUT = aiohttp.ClientTimeout(total=5)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


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
    """Queue ``event`` for every endpoint of the seller, inside the caller's transaction."""
    endpoints = await session.scalars(
        select(WebhookEndpoint.id).where(WebhookEndpoint.owner_id == seller_id)
    )
    now = utcnow()
    for endpoint_id in endpoints:
        payload = {"type": event, "created_at": now.isoformat(), "data": data}
        session.add(WebhookDelivery(endpoint_id=endpoint_id, event=event, payload=payload))


class Dispatcher:
    """Sends due deliveries. States: new -> running -> stopped.

    Each delivery is claimed by pushing its next attempt into the future with a conditional
    UPDATE before sending, so several nodes never send the same attempt twice.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        every: float = 1.0,
        *,
        private_networks: bool = False,
    ) -> None:
        self._sessions = sessions
        self._periodic = Periodic(self.send_due, every)
        self._private_networks = private_networks
        self._http: Outbound | None = None

    async def start(self) -> None:
        self._http = Outbound(SEND_TIMEOUT, private_networks=self._private_networks)
        self._periodic.start()

    async def close(self) -> None:
        await self._periodic.stop()
        if self._http is not None:
            await self._http.close()

    async def send_due(self) -> int:
        """Send what is due now; return how many were acknowledged."""
        now = utcnow()
        async with self._sessions.begin() as session:
            due = (
                await session.execute(
                    select(WebhookDelivery, WebhookEndpoint)
                    .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                    .where(
                        WebhookDelivery.delivered_at.is_(None),
                        WebhookDelivery.next_attempt_at <= now,
                        WebhookDelivery.attempts < MAX_ATTEMPTS,
                    )
                    .order_by(WebhookDelivery.created_at)
                    .limit(50)
                )
            ).all()
            claimed = []
            for delivery, endpoint in due:
                lease = now + timedelta(seconds=30)
                result = await session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery.id,
                        WebhookDelivery.next_attempt_at == delivery.next_attempt_at,
                    )
                    .values(next_attempt_at=lease)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    claimed.append(
                        (
                            delivery.id,
                            delivery.event,
                            delivery.payload,
                            delivery.attempts,
                            endpoint.url,
                            endpoint.secret,
                        )
                    )
        acknowledged = 0
        for delivery_id, event, payload, attempts, url, secret in claimed:
            error = await self._post(delivery_id, event, payload, url, secret)
            await self._record(delivery_id, attempts + 1, error)
            acknowledged += error is None
        return acknowledged

    async def _post(
        self, delivery_id: str, event: str, payload: dict[str, Any], url: str, secret: str
    ) -> str | None:
        assert self._http is not None
        body = json.dumps({"id": delivery_id, **payload}, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Shopcast-Event": event,
            "Shopcast-Event-Id": delivery_id,
            SIGNATURE: sign(secret, int(time.time()), body),
        }
        try:
            status = await self._http.post(url, body, headers)
            return None if 200 <= status < 300 else f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:500]

    async def _record(self, delivery_id: str, attempts: int, error: str | None) -> None:
        now = utcnow()
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if error is None:
            values["delivered_at"] = now
        else:
            values["next_attempt_at"] = now + timedelta(seconds=min(3600, 2**attempts))
        async with self._sessions.begin() as session:
            await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(values)
            )


@api.route(
    "POST",
    "/api/v1/webhooks",
    summary="Add a webhook endpoint",
    tag="webhooks",
    status=201,
    body=WebhookIn,
    response=WebhookCreatedOut,
    errors=(401, 403, 415, 422),
    description="The secret that signs the deliveries is shown once, in this answer.",
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
