"""Server-side sessions, the secret check, the shared LALAL.AI ledger and releases.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

* ``processing_jobs.history``: why earlier attempts of a job ended (a killed
  runner or worker), kept when the job is retried.
* ``web_sessions``: a cookie alone kept working after logout for 14 days;
  sessions now live on the server and logout deletes them.
* ``login_known_addresses``: failures from one address locked out every
  account behind it; accounts that signed in from it before may still try.
* ``installation_secret``: a node started with another SOUNDFORGE_SECRET_KEY
  refuses to start instead of failing later on every stored key and session.
* ``lalalai_usage``: the usage ledger was a file per machine.
* ``lalalai_releases``: provider work left by a job during an outage, retried
  until it is released.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processing_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("history", sa.JSON(), server_default=sa.text("'[]'"),
                                      nullable=False))

    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_web_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"])
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"])

    op.create_table(
        "login_known_addresses",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_known_addresses")),
    )
    op.create_index(op.f("ix_login_known_addresses_at"), "login_known_addresses", ["at"])

    op.create_table(
        "installation_secret",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("check_value", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation_secret")),
    )

    op.create_table(
        "lalalai_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("stems", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.Float(), nullable=False),
        sa.Column("source_name", sa.String(length=512), server_default="", nullable=False),
        sa.Column("preview", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lalalai_usage")),
        sa.UniqueConstraint("key_id", "task_id", name="uq_lalalai_usage_key_task"),
    )
    op.create_index(op.f("ix_lalalai_usage_key_id"), "lalalai_usage", ["key_id"])

    op.create_table(
        "lalalai_releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("task_ids", sa.JSON(), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL",
                                name=op.f("fk_lalalai_releases_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lalalai_releases")),
    )
    op.create_index(op.f("ix_lalalai_releases_next_attempt_at"), "lalalai_releases",
                    ["next_attempt_at"])


def downgrade() -> None:
    with op.batch_alter_table("processing_jobs", schema=None) as batch_op:
        batch_op.drop_column("history")
    op.drop_index(op.f("ix_lalalai_releases_next_attempt_at"), table_name="lalalai_releases")
    op.drop_table("lalalai_releases")
    op.drop_index(op.f("ix_lalalai_usage_key_id"), table_name="lalalai_usage")
    op.drop_table("lalalai_usage")
    op.drop_table("installation_secret")
    op.drop_index(op.f("ix_login_known_addresses_at"), table_name="login_known_addresses")
    op.drop_table("login_known_addresses")
    op.drop_index(op.f("ix_web_sessions_expires_at"), table_name="web_sessions")
    op.drop_index(op.f("ix_web_sessions_user_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
