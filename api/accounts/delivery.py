"""A buyer's delivery details: kept on the account, as the Delivery schema checked them."""

from __future__ import annotations

from api.accounts.schemas import Delivery
from api.identity.models import User


def keep_delivery(user: User, details: Delivery) -> dict[str, str]:
    """Store ``details`` on ``user`` (fields left out are not kept) and return them as stored.
    Orders keep their own copy (``Order.delivery``): changing these moves no shipped parcel."""
    stored = details.model_dump(mode="json", exclude_none=True)
    user.delivery = stored
    return stored
