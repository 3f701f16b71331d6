"""Live handoff: who claimed a handoff and when, what the customer was told about the wait,
the email offer (once), and the messages the support side sent.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("handoffs") as table:
        table.add_column(sa.Column("claimed_by", sa.String(255)))
        table.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True)))
        table.add_column(sa.Column("told_wait_minutes", sa.Integer))
        table.add_column(sa.Column("email_offered_at", sa.DateTime(timezone=True)))
    op.create_index("ix_handoffs_status", "handoffs", ["status"])
    op.create_table(
        "handoff_messages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("handoff_id", sa.String(36), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("agent", sa.String(255)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_handoff_messages_handoff_id", "handoff_messages", ["handoff_id"])
    op.create_index("ix_handoff_messages_conversation_id", "handoff_messages", ["conversation_id"])


def downgrade() -> None:
    op.drop_table("handoff_messages")
    op.drop_index("ix_handoffs_status", "handoffs")
    with op.batch_alter_table("handoffs") as table:
        for column in ("email_offered_at", "told_wait_minutes", "claimed_at", "claimed_by"):
            table.drop_column(column)
