"""Review: each turn's status (new, accepted, rejected, out_of_scope) and when it was reviewed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("learning_turns") as table:
        table.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="new"))
        table.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True)))
        table.add_column(sa.Column("normalised", sa.String(255), nullable=False, server_default=""))
    op.create_index("ix_learning_turns_status", "learning_turns", ["status"])


def downgrade() -> None:
    op.drop_index("ix_learning_turns_status", "learning_turns")
    with op.batch_alter_table("learning_turns") as table:
        table.drop_column("normalised")
        table.drop_column("reviewed_at")
        table.drop_column("status")
