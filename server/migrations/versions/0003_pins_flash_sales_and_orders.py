"""Pins, flash sales and orders.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=22), nullable=False),
        sa.Column("stream_id", sa.String(length=22), nullable=False),
        sa.Column("product_id", sa.String(length=22), nullable=False),
        sa.Column("buyer_id", sa.String(length=22), nullable=False),
        sa.Column("seller_id", sa.String(length=22), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("in_sale", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("hold_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('reserved', 'paid', 'cancelled', 'expired')", name=op.f("ck_orders_status")
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_orders_quantity_positive")),
        sa.CheckConstraint("unit_price_cents > 0", name=op.f("ck_orders_price_positive")),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_orders_buyer_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_orders_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["users.id"], name=op.f("fk_orders_seller_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_orders_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("buyer_id", "idempotency_key", name=op.f("uq_orders_buyer_id")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_seller_id"), ["seller_id"], unique=False)
        batch_op.create_index("ix_orders_status_hold", ["status", "hold_expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_stream_id"), ["stream_id"], unique=False)

    op.create_table(
        "pin_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("stream_id", sa.String(length=22), nullable=False),
        sa.Column("product_id", sa.String(length=22), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("x", sa.Float(), nullable=True),
        sa.Column("y", sa.Float(), nullable=True),
        sa.Column("offset_seconds", sa.Float(), nullable=True),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("sale_price_cents", sa.Integer(), nullable=True),
        sa.Column("sale_quantity", sa.Integer(), nullable=True),
        sa.Column("sale_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('pin', 'unpin', 'tag')", name=op.f("ck_pin_events_action")),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_pin_events_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_pin_events_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pin_events")),
    )
    with op.batch_alter_table("pin_events", schema=None) as batch_op:
        batch_op.create_index("ix_pin_events_stream_at", ["stream_id", "created_at"], unique=False)

    with op.batch_alter_table("stream_products", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revenue_cents", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sale_price_cents", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sale_remaining", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sale_limit", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sale_ends_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_stream_products_sale_not_negative"),
            "sale_remaining IS NULL OR sale_remaining >= 0",
        )
        batch_op.create_check_constraint(
            op.f("ck_stream_products_sale_price"),
            "sale_price_cents IS NULL OR sale_price_cents > 0",
        )


def downgrade() -> None:
    with op.batch_alter_table("stream_products", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_stream_products_sale_price"), type_="check")
        batch_op.drop_constraint(op.f("ck_stream_products_sale_not_negative"), type_="check")
        batch_op.drop_column("sale_ends_at")
        batch_op.drop_column("sale_limit")
        batch_op.drop_column("sale_remaining")
        batch_op.drop_column("sale_price_cents")
        batch_op.drop_column("pinned_at")
        batch_op.drop_column("revenue_cents")

    with op.batch_alter_table("pin_events", schema=None) as batch_op:
        batch_op.drop_index("ix_pin_events_stream_at")

    op.drop_table("pin_events")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_stream_id"))
        batch_op.drop_index("ix_orders_status_hold")
        batch_op.drop_index(batch_op.f("ix_orders_seller_id"))

    op.drop_table("orders")
