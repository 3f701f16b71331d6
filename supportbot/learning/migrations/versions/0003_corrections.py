"""Agent corrections: who gave a turn its label and when (a later correction replaces both).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("learning_turns") as table:
        table.add_column(sa.Column("labelled_by", sa.String(255)))
        table.add_column(sa.Column("labelled_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("learning_turns") as table:
        table.drop_column("labelled_at")
        table.drop_column("labelled_by")
