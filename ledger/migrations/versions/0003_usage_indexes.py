"""Indexes for the attempt pairing (failovers, retries, next attempt number) and per-provider quota windows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provider_usage") as batch:
        batch.drop_index("ix_usage_run_task")
        batch.create_index("ix_usage_run_task_attempt", ["run_id", "task_id", "attempt"])
        batch.create_index("ix_usage_provider_started", ["provider_id", "started_at"])


def downgrade() -> None:
    with op.batch_alter_table("provider_usage") as batch:
        batch.drop_index("ix_usage_provider_started")
        batch.drop_index("ix_usage_run_task_attempt")
        batch.create_index("ix_usage_run_task", ["run_id", "task_id"])
