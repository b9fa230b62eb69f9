"""Tasks sent to a vendor's batch API (Anthropic Message Batches, OpenAI Batch) and the vendor's batch id, so a
resumed run polls the vendor batch instead of submitting again, and `show`, the run summary and the API can say
that a task waits in one.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vendor_batch_requests",
        sa.Column("run_id", sa.String(length=64), primary_key=True),
        sa.Column("task_id", sa.String(length=200), primary_key=True),
        sa.Column("provider_id", sa.String(length=100), primary_key=True),
        sa.Column("vendor_batch_id", sa.String(length=200), nullable=False),
        sa.Column("custom_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_vendor_batch_requests_vendor_batch_id", "vendor_batch_requests", ["vendor_batch_id"])


def downgrade() -> None:
    # An older Switchboard knows nothing of vendor batches: a task still waiting in one is submitted again live.
    op.drop_index("ix_vendor_batch_requests_vendor_batch_id", table_name="vendor_batch_requests")
    op.drop_table("vendor_batch_requests")
