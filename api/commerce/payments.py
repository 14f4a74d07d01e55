"""Payments through the platform's Stripe account: Checkout Sessions, refunds, and the events
Stripe signs.

Every call goes through the SDK's async client (``Services.stripe``). A failed call is
``502 payment_provider``, logged with what Stripe said but never a key; raised inside a request,
it rolls the caller's transaction back, so nothing changes on our side either.
"""

from __future__ import annotations

import logging

import stripe
from pydantic import BaseModel, ConfigDict, ValidationError
from stripe import RequestOptions
from stripe.checkout import Session
from stripe.params import RefundCreateParams
from stripe.params.checkout import SessionCreateParams

from api.commerce.models import Order
from api.web.context import StripeAccount
from api.web.errors import ApiError

log = logging.getLogger(__name__)
_ONCE: RequestOptions = {"max_network_retries": 0}


class SessionEvent(BaseModel):
    """What a ``checkout.session.*`` event says of its session, as we use it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    payment_status: str | None = None
    payment_intent: str | None = None
    amount_total: int | None = None


def unavailable(message: str = "Stripe Checkout is not configured on this server") -> ApiError:
    return ApiError(409, "stripe_unavailable", message)


def verified_event(account: StripeAccount, payload: bytes, header: str) -> stripe.Event:
    """The event Stripe signed (the SDK checks the signature and its age), or 400."""
    secret = account.webhook_secret.get_secret_value()
    try:
        event: stripe.Event = stripe.Webhook.construct_event(payload, header, secret)
    except stripe.SignatureVerificationError:
        raise ApiError(
            400, "invalid_signature", "The Stripe-Signature header does not sign this body"
        ) from None
    except ValueError:  # not UTF-8, not JSON, or not an event
        raise _not_an_event() from None
    body = event.to_dict()
    data = body.get("data")
    if not (
        isinstance(body.get("id"), str)
        and isinstance(body.get("type"), str)
        and isinstance(data, dict)
        and isinstance(data.get("object"), dict)
    ):
        raise _not_an_event()
    return event


def session_event(event: stripe.Event) -> SessionEvent:
    try:
        return SessionEvent.model_validate(event.data.object.to_dict())
    except ValidationError:
        raise _not_an_event() from None


def _not_an_event() -> ApiError:
    return ApiError(400, "invalid_signature", "The body is not a Stripe event")


async def open_session(account: StripeAccount, params: SessionCreateParams, key: str) -> Session:
    """A new Checkout Session; ``key`` makes a retry with the same parameters return it."""
    try:
        return await account.client.v1.checkout.sessions.create_async(
            params, {"idempotency_key": key}
        )
    except stripe.StripeError as exc:
        raise _failed("open the checkout", exc) from None


async def find_session(account: StripeAccount, session_id: str) -> Session:
    try:
        return await account.client.v1.checkout.sessions.retrieve_async(session_id)
    except stripe.StripeError as exc:
        raise _failed("find the checkout", exc) from None


async def expire_session(account: StripeAccount, session_id: str) -> None:
    """Close an open session so it can no longer be paid; one that is over stays as it is."""
    try:
        await account.client.v1.checkout.sessions.expire_async(session_id)
    except stripe.InvalidRequestError as exc:
        log.info("Stripe checkout %s not expired: %s", session_id, exc.user_message)
    except stripe.StripeError as exc:
        _failed("expire a replaced checkout", exc)  # logged; it expires on its own later


async def close_session(account: StripeAccount, session_id: str) -> str | None:
    """Expire a session so it can no longer be paid, and say where it stands then: ``expired``
    (now or before: either way no one can pay it), ``complete`` (paid: Stripe refuses), ``open``
    (refused for another reason: ask again later), or None when Stripe could not be asked
    (logged). For the hold sweeper, which asks again at its next sweep: the SDK does not retry.

    Stripe refuses a session that is not open with a 400 that gives its status only in words
    ("This Checkout Session has a status of `expired`"), so the session is read back instead."""
    sessions = account.client.v1.checkout.sessions
    try:
        return (await sessions.expire_async(session_id, options=_ONCE)).status
    except stripe.InvalidRequestError:
        pass  # not open (or not found): read it back
    except stripe.StripeError as exc:
        _failed("expire the checkout", exc)  # logged
        return None
    try:
        return (await sessions.retrieve_async(session_id, options=_ONCE)).status
    except stripe.StripeError as exc:
        _failed("find the checkout", exc)
        return None


async def refund(
    account: StripeAccount | None, payment_intent: str, *, amount: int | None, key: str
) -> None:
    """Give back ``amount`` (None: all that is left) of a payment; ``key`` makes it once."""
    if account is None:
        raise unavailable("Stripe is not configured on this server: refund it in Stripe")
    params: RefundCreateParams = {"payment_intent": payment_intent}
    if amount is not None:
        params["amount"] = amount
    try:
        await account.client.v1.refunds.create_async(params, {"idempotency_key": key})
    except stripe.StripeError as exc:
        raise _failed("refund the payment", exc) from None


async def refund_order(account: StripeAccount | None, order: Order) -> None:
    """Refund a Stripe-paid order's share of its payment (one payment may pay several)."""
    if order.payment_ref is None:  # a session of nothing to pay has no PaymentIntent
        log.info("order %s was paid through Stripe without a payment: nothing to refund", order.id)
        return
    amount = order.quantity * order.unit_price_cents
    await refund(account, order.payment_ref, amount=amount, key=f"shopcast-refund-{order.id}")


def _failed(action: str, exc: stripe.StripeError) -> ApiError:
    # An authentication error's message quotes part of the key: leave it out.
    said = "" if isinstance(exc, stripe.AuthenticationError) else f": {exc.user_message}"
    log.warning(
        "Stripe could not %s (%s, HTTP %s, code %s, request %s)%s",
        action,
        type(exc).__name__,
        exc.http_status,
        exc.code,
        exc.request_id,
        said,
    )
    return ApiError(
        502,
        "payment_provider",
        f"Stripe could not {action}; nothing was changed, try again shortly",
        {"provider_status": exc.http_status} if exc.http_status else {},
    )
