"""keys and notify servers: initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 22:14:06.434655
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "handled_messages",
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("subscribe_topic", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_handled_messages")),
    )
    with op.batch_alter_table("handled_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handled_messages_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "keys_identities",
        sa.Column("identity_key", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("cacao", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("identity_key", name=op.f("pk_keys_identities")),
    )
    with op.batch_alter_table("keys_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_keys_identities_address"), ["address"], unique=False)

    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("icons", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("app_domain", sa.String(length=253), nullable=True),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("subscribe_private", sa.String(length=64), nullable=True),
        sa.Column("subscribe_public", sa.String(length=64), nullable=True),
        sa.Column("authentication_private", sa.String(length=64), nullable=True),
        sa.Column("authentication_public", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("app_domain", name=op.f("uq_projects_app_domain")),
        sa.UniqueConstraint("project_id", name=op.f("uq_projects_project_id")),
        sa.UniqueConstraint("topic", name=op.f("uq_projects_topic")),
    )
    op.create_table(
        "notification_types",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("image_urls", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"], ["projects.id"], name=op.f("fk_notification_types_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_types")),
        sa.UniqueConstraint("project", "name", name=op.f("uq_notification_types_project_name")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project", sa.String(length=36), nullable=False),
        sa.Column("notification_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("icon", sa.String(length=255), nullable=True),
        sa.Column("url", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project"], ["projects.id"], name=op.f("fk_notifications_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("project", "notification_id", name=op.f("uq_notifications_project_notification_id")),
    )
    op.create_table(
        "subscribers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project", sa.String(length=36), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("sym_key", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("expiry", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project"], ["projects.id"], name=op.f("fk_subscribers_project"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribers")),
        sa.UniqueConstraint("project", "address", name=op.f("uq_subscribers_project_address")),
        sa.UniqueConstraint("sym_key", name=op.f("uq_subscribers_sym_key")),
        sa.UniqueConstraint("topic", name=op.f("uq_subscribers_topic")),
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscribers_address"), ["address"], unique=False)

    op.create_table(
        "watchers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=128), nullable=False),
        sa.Column("project", sa.String(length=36), nullable=True),
        sa.Column("did_key", sa.String(length=128), nullable=False),
        sa.Column("sym_key", sa.String(length=64), nullable=False),
        sa.Column("expiry", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project"], ["projects.id"], name=op.f("fk_watchers_project"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watchers")),
        sa.UniqueConstraint("did_key", name=op.f("uq_watchers_did_key")),
    )
    with op.batch_alter_table("watchers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_watchers_address"), ["address"], unique=False)

    op.create_table(
        "subscriber_notifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("notification", sa.String(length=36), nullable=False),
        sa.Column("subscriber", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_read", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification"],
            ["notifications.id"],
            name=op.f("fk_subscriber_notifications_notification"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber"], ["subscribers.id"], name=op.f("fk_subscriber_notifications_subscriber"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber_notifications")),
        sa.UniqueConstraint(
            "notification", "subscriber", name=op.f("uq_subscriber_notifications_notification_subscriber")
        ),
    )
    with op.batch_alter_table("subscriber_notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscriber_notifications_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_subscriber_notifications_subscriber_created_at_id"),
            ["subscriber", "created_at", "id"],
            unique=False,
        )

    op.create_table(
        "subscriber_scopes",
        sa.Column("subscriber", sa.String(length=36), nullable=False),
        sa.Column("type_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber"], ["subscribers.id"], name=op.f("fk_subscriber_scopes_subscriber"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("subscriber", "type_id", name=op.f("pk_subscriber_scopes")),
    )


def downgrade() -> None:

    op.drop_table("subscriber_scopes")
    with op.batch_alter_table("subscriber_notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriber_notifications_subscriber_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_subscriber_notifications_status_next_attempt_at"))

    op.drop_table("subscriber_notifications")
    with op.batch_alter_table("watchers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_watchers_address"))

    op.drop_table("watchers")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscribers_address"))

    op.drop_table("subscribers")
    op.drop_table("notifications")
    op.drop_table("notification_types")
    op.drop_table("projects")
    with op.batch_alter_table("keys_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_keys_identities_address"))

    op.drop_table("keys_identities")
    with op.batch_alter_table("handled_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handled_messages_expires_at"))

    op.drop_table("handled_messages")
