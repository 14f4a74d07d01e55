"""Checkout and fulfilment: the buyer's delivery details, how each seller takes payment, an
order's payment and shipping, and the Stripe events already handled.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('reserved', 'paid', 'cancelled', 'expired')"
NEW_STATUSES = "status IN ('reserved', 'paid', 'shipped', 'cancelled', 'expired')"
CHECKOUTS = "checkout IN ('pay_later', 'shop', 'stripe')"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("delivery", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("checkout", sa.String(length=16), nullable=False, server_default="pay_later")
        )
        batch_op.create_check_constraint(op.f("ck_users_checkout"), CHECKOUTS)
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_constraint(op.f("ck_orders_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_orders_status"), NEW_STATUSES)
        batch_op.add_column(sa.Column("delivery", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("payment_method", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("payment_ref", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("checkout_session_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("tracking_url", sa.String(length=2048), nullable=True))
        batch_op.create_index("ix_orders_checkout_session_id", ["checkout_session_id"])
        batch_op.create_index("ix_orders_buyer_id", ["buyer_id", "created_at"])
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), primary_key=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stripe_events")
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_index("ix_orders_buyer_id")
        batch_op.drop_index("ix_orders_checkout_session_id")
        for column in (
            "tracking_url",
            "shipped_at",
            "paid_at",
            "checkout_session_id",
            "payment_ref",
            "payment_method",
            "delivery",
        ):
            batch_op.drop_column(column)
        batch_op.drop_constraint(op.f("ck_orders_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_orders_status"), OLD_STATUSES)
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint(op.f("ck_users_checkout"), type_="check")
        batch_op.drop_column("checkout")
        batch_op.drop_column("delivery")
