"""Accounts: users, their roles and whom they follow."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db import ID_LENGTH, Base, check_in, new_id, utcnow


class Role(enum.StrEnum):
    VIEWER = "viewer"
    SELLER = "seller"
    MODERATOR = "moderator"
    ADMIN = "admin"


class Checkout(enum.StrEnum):
    """How a seller takes payment for what buyers reserve."""

    PAY_LATER = "pay_later"  # the seller invoices, then marks the order paid
    SHOP = "shop"  # the product's checkout_url on the seller's shop, settled by signed callback
    STRIPE = "stripe"  # Stripe Checkout on the platform's account


def placeholder_handle() -> str:
    """The handle of an account made without one (staff made by the command line)."""
    return f"user-{secrets.token_hex(4)}"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(check_in("role", Role), name="role"),
        CheckConstraint(check_in("checkout", Checkout), name="checkout"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    # The seller page's /s/<handle>: made from the display name at sign-up (api.accounts.handles).
    handle: Mapped[str] = mapped_column(String(40), unique=True, default=placeholder_handle)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.VIEWER)
    neighborhood: Mapped[str | None] = mapped_column(String(120))  # the place's name, as typed
    # Where the account is, as an H3 cell (api.accounts.whereabouts): who a neighbourhood show
    # admits. Never the point it was made from.
    home_cell: Mapped[str | None] = mapped_column(String(16), index=True)
    delivery: Mapped[dict[str, str] | None] = mapped_column(JSON)  # contact and shipping address
    checkout: Mapped[str] = mapped_column(String(16), default=Checkout.PAY_LATER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Follow(Base):
    __tablename__ = "follows"
    __table_args__ = (CheckConstraint("follower_id <> seller_id", name="not_self"),)

    follower_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    seller_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
