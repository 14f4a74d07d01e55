"""Auctions: one unit of a pinned product to the highest bidder, and the bids accepted.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _foreign(column: str, table: str, referred: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{referred}.id"],
        name=op.f(f"fk_{table}_{column}_{referred}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "auctions",
        sa.Column("id", sa.String(length=22), nullable=False),
        sa.Column("stream_id", sa.String(length=22), nullable=False),
        sa.Column("product_id", sa.String(length=22), nullable=False),
        sa.Column("seller_id", sa.String(length=22), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("start_price_cents", sa.Integer(), nullable=False),
        sa.Column("increment_cents", sa.Integer(), nullable=False),
        sa.Column("reserve_cents", sa.Integer(), nullable=True),
        sa.Column("soft_close_seconds", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("high_cents", sa.Integer(), nullable=True),
        sa.Column("high_bidder_id", sa.String(length=22), nullable=True),
        sa.Column("high_bidder_name", sa.String(length=80), nullable=True),
        sa.Column("high_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bids", sa.Integer(), nullable=False),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("order_id", sa.String(length=22), nullable=True),
        sa.CheckConstraint("state IN ('open', 'sold', 'unsold')", name=op.f("ck_auctions_state")),
        sa.CheckConstraint("start_price_cents > 0", name=op.f("ck_auctions_start_positive")),
        sa.CheckConstraint("increment_cents > 0", name=op.f("ck_auctions_increment_positive")),
        sa.CheckConstraint(
            "high_cents IS NULL OR high_cents >= start_price_cents", name=op.f("ck_auctions_high")
        ),
        _foreign("stream_id", "auctions", "streams", "CASCADE"),
        _foreign("product_id", "auctions", "products", "CASCADE"),
        _foreign("seller_id", "auctions", "users", "CASCADE"),
        _foreign("high_bidder_id", "auctions", "users", "SET NULL"),
        _foreign("order_id", "auctions", "orders", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auctions")),
    )
    op.create_index("ix_auctions_stream_id", "auctions", ["stream_id"])
    op.create_index("ix_auctions_state_ends_at", "auctions", ["state", "ends_at"])
    op.create_table(
        "bids",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("auction_id", sa.String(length=22), nullable=False),
        sa.Column("bidder_id", sa.String(length=22), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delay_ms", sa.Integer(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("extended", sa.Boolean(), nullable=False),
        _foreign("auction_id", "bids", "auctions", "CASCADE"),
        _foreign("bidder_id", "bids", "users", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bids")),
        sa.UniqueConstraint("auction_id", "amount_cents", name=op.f("uq_bids_auction_id")),
    )


def downgrade() -> None:
    op.drop_table("bids")
    op.drop_index("ix_auctions_state_ends_at", table_name="auctions")
    op.drop_index("ix_auctions_stream_id", table_name="auctions")
    op.drop_table("auctions")
