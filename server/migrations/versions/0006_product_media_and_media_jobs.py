"""Product media (images, videos) and the media jobs that process uploaded videos.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "product_media",
        sa.Column("id", sa.String(length=22), nullable=False),
        sa.Column("product_id", sa.String(length=22), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("upload_key", sa.String(length=1024), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("thumbnail_url", sa.String(length=2048), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('image', 'video')", name=op.f("ck_product_media_kind")),
        sa.CheckConstraint(
            "state IN ('processing', 'ready', 'failed')", name=op.f("ck_product_media_state")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_media_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_media")),
        sa.UniqueConstraint("upload_key", name=op.f("uq_product_media_upload_key")),
    )
    with op.batch_alter_table("product_media", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_product_media_product_id"), ["product_id"], unique=False
        )

    op.create_table(
        "media_jobs",
        sa.Column("id", sa.String(length=22), nullable=False),
        sa.Column("media_id", sa.String(length=22), nullable=False),
        sa.Column("owner_id", sa.String(length=22), nullable=False),
        sa.Column("upload_key", sa.String(length=1024), nullable=False),
        sa.Column("thumbnail_at", sa.Float(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_media_jobs_state")
        ),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name=op.f("ck_media_jobs_progress")),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["product_media.id"],
            name=op.f("fk_media_jobs_media_id_product_media"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_media_jobs_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_jobs")),
    )
    with op.batch_alter_table("media_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_media_jobs_claim", ["state", "lease_expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_media_jobs_media_id"), ["media_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_media_jobs_owner_id"), ["owner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("media_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_jobs_owner_id"))
        batch_op.drop_index(batch_op.f("ix_media_jobs_media_id"))
        batch_op.drop_index("ix_media_jobs_claim")

    op.drop_table("media_jobs")
    with op.batch_alter_table("product_media", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_media_product_id"))

    op.drop_table("product_media")
