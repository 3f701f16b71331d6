"""Handoff records and feedback, as the store created them before it had migrations.

A database made by that older code already has both tables: they are kept as they are, and
this revision only records that the schema is at 0001.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "handoffs" not in existing:
        op.create_table(
            "handoffs",
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("conversation_id", sa.String(255), nullable=False),
            sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
            sa.Column("reason", sa.String(64), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("customer_id", sa.String(64)),
            sa.Column("context_json", sa.Text, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("resolved_at", sa.DateTime(timezone=True)),
        )
        op.create_index("ix_handoffs_conversation_id", "handoffs", ["conversation_id"])
    if "feedback" not in existing:
        op.create_table(
            "feedback",
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("conversation_id", sa.String(255), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("message_id", sa.String(64), nullable=False),
            sa.Column("answer_index", sa.Integer, nullable=False),
            sa.Column("value", sa.Integer, nullable=False),
            sa.Column("user_text", sa.Text),
            sa.Column("bot_text", sa.Text),
            sa.Column("intent", sa.String(255)),
            sa.Column("confidence", sa.Float),
            sa.Column("customer_id", sa.String(64)),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.UniqueConstraint("conversation_id", "message_id", "answer_index", "kind"),
        )
        op.create_index("ix_feedback_conversation_id", "feedback", ["conversation_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("handoffs")
