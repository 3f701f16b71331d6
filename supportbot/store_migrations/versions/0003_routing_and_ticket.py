"""Routing and the ticket: which team's queue a handoff belongs to and how urgent it is
(docs/handoff.md#routing), and the id of the ticket it was filed as, so agent replies on that
ticket can reach the customer's chat.

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
    with op.batch_alter_table("handoffs") as table:
        table.add_column(sa.Column("ticket_id", sa.String(64)))
        table.add_column(sa.Column("team", sa.String(64)))
        table.add_column(sa.Column("priority", sa.String(16)))
    op.create_index("ix_handoffs_team", "handoffs", ["team"])


def downgrade() -> None:
    op.drop_index("ix_handoffs_team", "handoffs")
    with op.batch_alter_table("handoffs") as table:
        for column in ("priority", "team", "ticket_id"):
            table.drop_column(column)
