"""Keep the answer on the successful attempt row, so a task whose completion was not yet written when the
process died is finished from the ledger on resume instead of being called (and charged) again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provider_usage") as batch:
        batch.add_column(sa.Column("output", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provider_usage") as batch:
        batch.drop_column("output")
