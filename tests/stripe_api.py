"""A local stand-in for the parts of Stripe's API that Shopcast calls, for tests.

Stripe cannot be reached from the test machines, so the app's real Stripe SDK is pointed here
(``SHOPCAST_STRIPE_API_BASE``). It answers the calls Shopcast makes the way Stripe documents
them: Checkout Session create, retrieve and expire (an open session becomes ``expired``; any
other is refused with Stripe's 400), Refund create. It records every request as the SDK sent it
(form-encoded), checks the Bearer key, replays an Idempotency-Key (and refuses one reused with
other parameters), enforces that a session expires 30 minutes to 24 hours after it is created,
and answers errors in Stripe's ``{"error": {...}}`` shape. Events are signed exactly as
Stripe signs them (``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``), so the
app verifies them with the SDK's own ``stripe.Webhook.construct_event``.

A session's ``url`` is a small page of this server with a Pay button: paying completes the
session, delivers the signed ``checkout.session.completed`` event to ``webhook_url`` (when set)
and redirects to the session's ``success_url``, as Stripe's hosted page would.

    async with StripeStandIn() as stripe_api:
        settings = Settings(stripe_api_base=stripe_api.url, stripe_secret_key=stripe_api.api_key,
                            stripe_webhook_secret=stripe_api.webhook_secret, ...)
        ...
        body, header = stripe_api.sign(stripe_api.complete(session_id))
        await client.post("/api/v1/stripe/webhook", data=body,
                          headers={"Stripe-Signature": header})
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

API_KEY = "sk_test_shopcast_stand_in"
WEBHOOK_SECRET = "whsec_shopcast_stand_in"
API_VERSION = "2025-11-17.clover"
MIN_LIFETIME = 30 * 60  # Stripe: expires_at is 30 minutes to 24 hours after creation
MAX_LIFETIME = 24 * 3600


@dataclass(frozen=True)
class Recorded:
    """One API request as the SDK sent it."""

    method: str
    path: str
    form: dict[str, str]  # the form body (or query), keys as sent: line_items[0][quantity]
    idempotency_key: str | None

    @property
    def params(self) -> dict[str, Any]:
        """The form as the nested object it encodes (``line_items`` a list)."""
        return _nested(self.form)


class StripeError(Exception):
    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": kind, "message": message, **extra}}


class StripeStandIn:
    """Stripe's API on 127.0.0.1, a free port. States: new -> started -> closed."""

    def __init__(self, api_key: str = API_KEY, webhook_secret: str = WEBHOOK_SECRET) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.url = ""
        self.webhook_url: str | None = None  # where deliver() and the Pay button post events
        self.requests: list[Recorded] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self._failures: list[StripeError] = []
        self._replays: dict[str, tuple[str, dict[str, str], int, dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> StripeStandIn:
        app = web.Application()
        app.add_routes(
            [
                web.post("/v1/checkout/sessions", self._api(self._create)),
                web.get("/v1/checkout/sessions/{id}", self._api(self._retrieve)),
                web.post("/v1/checkout/sessions/{id}/expire", self._api(self._expire)),
                web.post("/v1/refunds", self._api(self._refund)),
                web.get("/c/pay/{id}", self._page),
                web.post("/c/pay/{id}", self._pay),
            ]
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> StripeStandIn:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # What tests use.

    def calls(self, method: str, path: str) -> list[Recorded]:
        """The recorded requests to ``method path`` (path without the query)."""
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def fail_next(
        self, status: int = 400, message: str = "Stripe is down for the test", kind: str = ""
    ) -> None:
        """Answer the next API request with this error (4xx: the SDK does not retry it)."""
        kind = kind or ("api_error" if status >= 500 else "invalid_request_error")
        self._failures.append(StripeError(status, kind, message))

    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A Stripe event of ``kind`` about ``obj`` (a copy of it, as it is now)."""
        return {
            "id": f"evt_test_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": json.loads(json.dumps(obj))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }

    def sign(
        self, event: dict[str, Any], timestamp: int | None = None, secret: str | None = None
    ) -> tuple[bytes, str]:
        """The body Stripe would POST and its ``Stripe-Signature`` header."""
        return self.sign_raw(json.dumps(event).encode(), timestamp, secret)

    def sign_raw(
        self, body: bytes, timestamp: int | None = None, secret: str | None = None
    ) -> tuple[bytes, str]:
        """``body`` as it is, and the ``Stripe-Signature`` header Stripe would give it."""
        at = int(time.time()) if timestamp is None else timestamp
        key = (secret or self.webhook_secret).encode()
        mac = hmac.new(key, f"{at}.".encode() + body, hashlib.sha256).hexdigest()
        return body, f"t={at},v1={mac}"

    def complete(self, session_id: str, payment_status: str = "paid") -> dict[str, Any]:
        """The buyer paid: the session is complete; its ``checkout.session.completed`` event."""
        session = self.sessions[session_id]
        session.update(
            status="complete",
            payment_status=payment_status,
            payment_intent=f"pi_test_{secrets.token_hex(12)}",
            url=None,
        )
        return self.event("checkout.session.completed", session)

    def expire(self, session_id: str) -> dict[str, Any]:
        """The session ran out: it is expired; its ``checkout.session.expired`` event."""
        session = self.sessions[session_id]
        session.update(status="expired", url=None)
        return self.event("checkout.session.expired", session)

    async def deliver(self, event: dict[str, Any]) -> int:
        """POST the signed event to ``webhook_url``, as Stripe does; the answer's status."""
        assert self.webhook_url, "set webhook_url first"
        body, header = self.sign(event)
        headers = {"Content-Type": "application/json", "Stripe-Signature": header}
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.webhook_url, data=body, headers=headers) as answer,
        ):
            return answer.status

    # The API.

    def _api(self, handle: Any) -> Any:
        async def serve(request: web.Request) -> web.Response:
            raw = await request.text() if request.method == "POST" else request.query_string
            form = dict(parse_qsl(raw, keep_blank_values=True))
            key = request.headers.get("Idempotency-Key")
            self.requests.append(Recorded(request.method, request.path, form, key))
            try:
                status, body = self._answer(request, form, key, handle)
            except StripeError as error:
                status, body = error.status, error.body
            headers = {"Request-Id": f"req_{secrets.token_hex(8)}"}
            return web.json_response(body, status=status, headers=headers)

        return serve

    def _answer(
        self, request: web.Request, form: dict[str, str], key: str | None, handle: Any
    ) -> tuple[int, dict[str, Any]]:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise StripeError(401, "invalid_request_error", "Invalid API Key provided")
        if self._failures:
            raise self._failures.pop(0)
        if key is not None and key in self._replays:
            path, sent, status, body = self._replays[key]
            if (path, sent) != (request.path, form):
                raise StripeError(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                )
            return status, body
        body = handle(request, _nested(form))  # a refusal is not kept for replay, as Stripe's
        if key is not None and request.method == "POST":
            self._replays[key] = (request.path, form, 200, body)
        return 200, body

    def _create(self, _request: web.Request, params: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        for name in ("mode", "line_items", "success_url"):
            if name not in params:
                raise _missing(name)
        expires_at = int(params.get("expires_at", now + MAX_LIFETIME))
        if expires_at < now + MIN_LIFETIME:
            raise _invalid(
                "expires_at",
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
                "creation.",
            )
        if expires_at > now + MAX_LIFETIME:
            raise _invalid(
                "expires_at",
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session "
                "creation.",
            )
        items = params["line_items"]
        currencies = {item["price_data"]["currency"].lower() for item in items}
        if len(currencies) != 1:
            raise _invalid("line_items", "All line items must use the same currency.")
        total = sum(int(i["price_data"]["unit_amount"]) * int(i["quantity"]) for i in items)
        session_id = f"cs_test_{secrets.token_hex(24)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "created": now,
            "currency": currencies.pop(),
            "customer_email": params.get("customer_email"),
            "expires_at": expires_at,
            "livemode": False,
            "metadata": params.get("metadata", {}),
            "mode": params["mode"],
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params["success_url"],
            "url": f"{self.url}/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return session

    def _retrieve(self, request: web.Request, _params: dict[str, Any]) -> dict[str, Any]:
        return self._session(request.match_info["id"])

    def _expire(self, request: web.Request, _params: dict[str, Any]) -> dict[str, Any]:
        session = self._session(request.match_info["id"])
        if session["status"] != "open":  # Stripe's words; the error has no code
            raise StripeError(
                400,
                "invalid_request_error",
                'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
                f"Session has a status of `{session['status']}`.",
            )
        session.update(status="expired", url=None)
        return session

    def _refund(self, _request: web.Request, params: dict[str, Any]) -> dict[str, Any]:
        intent = params.get("payment_intent")
        paid = [s for s in self.sessions.values() if intent and s["payment_intent"] == intent]
        if not paid:
            raise StripeError(
                404,
                "invalid_request_error",
                f"No such payment_intent: '{intent}'",
                code="resource_missing",
                param="payment_intent",
            )
        refunded = sum(r["amount"] for r in self.refunds if r["payment_intent"] == intent)
        left = paid[0]["amount_total"] - refunded
        amount = int(params.get("amount", left))
        if left <= 0:
            raise StripeError(
                400,
                "invalid_request_error",
                "Charge has already been refunded.",
                code="charge_already_refunded",
            )
        if not 0 < amount <= left:
            raise _invalid("amount", f"Refund amount ({amount}) is greater than the rest ({left}).")
        refund = {
            "id": f"re_test_{secrets.token_hex(12)}",
            "object": "refund",
            "amount": amount,
            "currency": paid[0]["currency"],
            "metadata": params.get("metadata", {}),
            "payment_intent": intent,
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        self.refunds.append(refund)
        return refund

    def _session(self, session_id: str) -> dict[str, Any]:
        if session_id not in self.sessions:
            raise StripeError(
                404,
                "invalid_request_error",
                f"No such checkout.session: '{session_id}'",
                code="resource_missing",
                param="session",
            )
        return self.sessions[session_id]

    # The hosted page.

    async def _page(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None or session["status"] != "open":
            return web.Response(status=404, text="This checkout is over.")
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        page = (
            "<!doctype html><title>Stripe Checkout (stand-in)</title>"
            f"<p>Pay <strong>{html.escape(amount)}</strong></p>"
            f'<form method="post"><button type="submit">Pay</button></form>'
        )
        return web.Response(text=page, content_type="text/html")

    async def _pay(self, request: web.Request) -> web.Response:
        session_id = request.match_info["id"]
        session = self.sessions.get(session_id)
        if session is None or session["status"] != "open":
            return web.Response(status=404, text="This checkout is over.")
        event = self.complete(session_id)
        if self.webhook_url:
            await self.deliver(event)
        target = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
        raise web.HTTPSeeOther(target)


def _missing(name: str) -> StripeError:
    return StripeError(
        400,
        "invalid_request_error",
        f"Missing required param: {name}.",
        code="parameter_missing",
        param=name,
    )


def _invalid(name: str, message: str) -> StripeError:
    return StripeError(
        400, "invalid_request_error", message, code="parameter_invalid_integer", param=name
    )


def _nested(form: dict[str, str]) -> dict[str, Any]:
    """``{"a[0][b]": "1"}`` -> ``{"a": [{"b": "1"}]}``: the object Stripe's form encoding spells."""
    root: dict[str, Any] = {}
    for key, value in form.items():
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _lists(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items
