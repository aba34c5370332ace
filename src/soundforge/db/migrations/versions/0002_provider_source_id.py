"""The LALAL.AI source file of a running job.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

A job recorded its provider task ids only when it completed. It now records
them, and the id of the file it uploaded, while it runs, so that when its
worker dies another worker can cancel the tasks and delete the file.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processing_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_source_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processing_jobs", schema=None) as batch_op:
        batch_op.drop_column("provider_source_id")
