"""Tasks posted to the HTTP API with a deadline, kept while they route in the background: a task left waiting in a
vendor batch by a stopped API is routed again by the next start, which polls that vendor batch (never submitting
it twice). The table keeps the task's prompt only until its outcome is recorded.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_deferred_tasks",
        sa.Column("run_id", sa.String(length=64), primary_key=True),
        sa.Column("task_id", sa.String(length=200), primary_key=True),
        sa.Column("task", sa.JSON(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    # An older Switchboard does not resume API tasks: one left waiting in a vendor batch stays `pending`.
    op.drop_table("api_deferred_tasks")
