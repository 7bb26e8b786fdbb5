"""dapp side: project listing and welcome notification, withdrawals, delivery errors, webhooks to dapps

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("listed", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("welcome", sa.Text(), nullable=True))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("withdrawn_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("subscriber_notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_error", sa.String(length=255), nullable=True))

    op.create_table(
        "dapp_webhooks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.Column("delivered", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["project"], ["projects.id"], name=op.f("fk_dapp_webhooks_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dapp_webhooks")),
    )
    with op.batch_alter_table("dapp_webhooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dapp_webhooks_project"), ["project"], unique=False)

    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("webhook", sa.String(length=36), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook"], ["dapp_webhooks.id"], name=op.f("fk_webhook_events_webhook"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_events_webhook_delivered_at_id"), ["webhook", "delivered_at", "id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("webhook_events")
    op.drop_table("dapp_webhooks")
    with op.batch_alter_table("subscriber_notifications", schema=None) as batch_op:
        batch_op.drop_column("last_error")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("withdrawn_at")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("welcome")
        batch_op.drop_column("listed")
