"""Routing corrections: an agent moved a handoff to another team's queue (docs/handoff.md#routing).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routing_corrections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("handoff_id", sa.String(36), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("intent", sa.String(255)),
        sa.Column("from_team", sa.String(64)),
        sa.Column("to_team", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(255), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_routing_corrections_at", "routing_corrections", ["at"])


def downgrade() -> None:
    op.drop_index("ix_routing_corrections_at", "routing_corrections")
    op.drop_table("routing_corrections")
