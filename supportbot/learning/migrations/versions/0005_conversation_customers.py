"""Who each conversation's verified customer is, for first-contact resolution in `supportbot
report` (supportbot/learning/analytics.py): the collector reads it from the `customer_id` slot.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "learning_conversation_customers",
        sa.Column("conversation_id", sa.String(255), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("learning_conversation_customers")
