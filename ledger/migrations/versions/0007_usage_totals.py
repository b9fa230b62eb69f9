"""Totals of pruned attempts (`switchboard db prune`): a report over a pruned period keeps its cost, tokens,
attempts and outcomes per day, provider, subscription, model, task type, team, strategy and outcome.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from ledger.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_totals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("provider_id", sa.String(length=100), nullable=False),
        sa.Column("subscription", sa.String(length=100), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("task_type", sa.String(length=100), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=True),
        sa.Column("strategy", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_attempts", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("tokens_input", sa.Integer(), nullable=False),
        sa.Column("tokens_output", sa.Integer(), nullable=False),
        sa.Column("tokens_cache_read", sa.Integer(), nullable=False),
        sa.Column("tokens_cache_write", sa.Integer(), nullable=False),
        sa.Column("tokens_reasoning", sa.Integer(), nullable=False),
        sa.Column("pruned_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_usage_totals_day", "usage_totals", ["day"])


def downgrade() -> None:
    op.drop_index("ix_usage_totals_day", table_name="usage_totals")
    op.drop_table("usage_totals")
