"""broadcast_expansions: a broadcast's delivery rows are written a chunk at a time by the delivery workers,
instead of all of them by the request

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broadcast_expansions",
        sa.Column("notification", sa.String(length=36), nullable=False),
        sa.Column("project", sa.String(length=36), nullable=False),
        sa.Column("type_id", sa.String(length=36), nullable=False),
        sa.Column("cutoff", sa.BigInteger(), nullable=False),
        sa.Column("after", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification"], ["notifications.id"], name=op.f("fk_broadcast_expansions_notification"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("notification", name=op.f("pk_broadcast_expansions")),
    )


def downgrade() -> None:
    op.drop_table("broadcast_expansions")
