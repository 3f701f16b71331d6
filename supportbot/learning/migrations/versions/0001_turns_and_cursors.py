"""Customer turns with their candidate reasons, and the collector's cursors.

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "learning_turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("intent", sa.String(255)),
        sa.Column("confidence", sa.Float),
        sa.Column("fell_back", sa.Integer, nullable=False, server_default="0"),
        sa.Column("ranking_json", sa.Text, nullable=False, server_default="[]"),
        sa.Column("entities_json", sa.Text, nullable=False, server_default="[]"),
        sa.Column("channel", sa.String(64)),
        sa.Column("model_id", sa.String(64)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reasons_json", sa.Text, nullable=False, server_default="[]"),
        sa.Column("label", sa.String(255)),
        sa.Column("label_source", sa.String(64)),
        sa.UniqueConstraint("conversation_id", "message_id"),
    )
    op.create_index("ix_learning_turns_conversation_id", "learning_turns", ["conversation_id"])
    op.create_table(
        "learning_cursors",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("position", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("learning_cursors")
    op.drop_table("learning_turns")
