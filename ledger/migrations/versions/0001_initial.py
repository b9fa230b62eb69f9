"""Create the ledger: runs, tasks, provider_usage, providers, provider_events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from ledger.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("batch_name", sa.String(200), nullable=False),
        sa.Column("batch_hash", sa.String(64), nullable=False),
        sa.Column("team", sa.String(100)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("strategy", sa.String(40)),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
    )
    op.create_index("ix_runs_batch_name", "runs", ["batch_name"])
    op.create_index("ix_runs_name_hash", "runs", ["batch_name", "batch_hash", "started_at"])
    op.create_table(
        "tasks",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("task_id", sa.String(200), primary_key=True),
        sa.Column("task_type", sa.String(100), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("team", sa.String(100)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("provider_id", sa.String(100)),
        sa.Column("output", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("decision", sa.JSON()),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime()),
    )
    op.create_table(
        "provider_usage",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(200), nullable=False),
        sa.Column("provider_id", sa.String(100), nullable=False),
        sa.Column("subscription", sa.String(100)),
        sa.Column("model", sa.String(100)),
        sa.Column("task_type", sa.String(100), nullable=False),
        sa.Column("team", sa.String(100)),
        sa.Column("strategy", sa.String(40)),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(30), nullable=False),
        sa.Column("error_type", sa.String(100)),
        sa.Column("error_message", sa.Text()),
        sa.Column("tokens_input", sa.Integer(), nullable=False),
        sa.Column("tokens_output", sa.Integer(), nullable=False),
        sa.Column("tokens_cache_read", sa.Integer(), nullable=False),
        sa.Column("tokens_cache_write", sa.Integer(), nullable=False),
        sa.Column("tokens_reasoning", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("idempotency_key", sa.String(300), nullable=False, unique=True),
    )
    op.create_index("ix_provider_usage_run_id", "provider_usage", ["run_id"])
    op.create_index("ix_provider_usage_started_at", "provider_usage", ["started_at"])
    op.create_index("ix_usage_run_task", "provider_usage", ["run_id", "task_id"])
    op.create_table(
        "providers",
        sa.Column("provider_id", sa.String(100), primary_key=True),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("capabilities", sa.JSON()),
        sa.Column("health", sa.JSON()),
        sa.Column("metadata", sa.JSON()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "provider_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("provider_id", sa.String(100), nullable=False),
        sa.Column("subscription", sa.String(100)),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("detail", sa.JSON()),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_provider_events_provider_id", "provider_events", ["provider_id"])
    op.create_index("ix_provider_events_at", "provider_events", ["at"])


def downgrade() -> None:
    for table in ("provider_events", "providers", "provider_usage", "tasks", "runs"):
        op.drop_table(table)
