"""broadcast_parts: a broadcast is delivered a part of its audience at a time, and a delivery row is written
once, as published, by the worker that published it; an index on subscriber_scopes (type_id, subscriber) reads a
type's subscribers in id order

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
        "broadcast_parts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("notification", sa.String(length=36), nullable=False),
        sa.Column("audience_at", sa.BigInteger(), nullable=False),
        sa.Column("after_id", sa.String(length=36), nullable=False),
        sa.Column("upto_id", sa.String(length=36), nullable=True),
        sa.Column("done_to", sa.String(length=36), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("held_until", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["notification"], ["notifications.id"], name=op.f("fk_broadcast_parts_notification"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_parts")),
    )
    with op.batch_alter_table("broadcast_parts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_broadcast_parts_status_created_at"), ["status", "created_at"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_broadcast_parts_notification"), ["notification"], unique=False)
    with op.batch_alter_table("subscriber_scopes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriber_scopes_type_id_subscriber"), ["type_id", "subscriber"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscriber_scopes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriber_scopes_type_id_subscriber"))
    op.drop_table("broadcast_parts")
