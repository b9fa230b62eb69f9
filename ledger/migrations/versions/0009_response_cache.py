"""The response cache: attempts carry the task's cache key (indexed, for the lookup), and a task served from the
cache gets an attempt row of its own (provider `cache`, no cost, no tokens) marked `cache_hit`, naming the attempt
it came from (`cache_source`) and what that attempt cost (`cache_saved_usd`: what the hit saved).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provider_usage") as batch:
        batch.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("cache_hit", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("cache_source", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("cache_saved_usd", sa.Float(), nullable=True))
        batch.create_index("ix_provider_usage_cache_key", ["cache_key"])


def downgrade() -> None:
    # An older Switchboard reads a cache hit's row as an attempt on a provider named `cache` that cost nothing.
    with op.batch_alter_table("provider_usage") as batch:
        batch.drop_index("ix_provider_usage_cache_key")
        batch.drop_column("cache_saved_usd")
        batch.drop_column("cache_source")
        batch.drop_column("cache_hit")
        batch.drop_column("cache_key")
