"""A user's file-name template for ZIP downloads.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Exports name files by a template ("{track}-{stem}.{ext}"); a user's own one
names the entries of their ZIP downloads. NULL keeps the built-in layout.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("filename_template", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.drop_column("filename_template")
