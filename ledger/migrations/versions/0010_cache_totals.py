"""The kept totals of pruned attempts keep what the response cache saved (`cache_saved_usd`, summed over the
cache hits of each row's key), so a report over a pruned period still shows the saving.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_totals") as batch:
        batch.add_column(sa.Column("cache_saved_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    # An older Switchboard still counts the pruned hits (attempts of provider `cache`), not what they saved.
    with op.batch_alter_table("usage_totals") as batch:
        batch.drop_column("cache_saved_usd")
