"""Which attempts a vendor batch API answered (or refused): `provider_usage.vendor_batch_id`. Their latency is the
batch's wait, not the provider's speed, so the adaptive strategy's memory leaves them out; `--json` shows the id.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provider_usage") as batch:
        batch.add_column(sa.Column("vendor_batch_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    # The vendor_batch_requests table (0011) still says which tasks went through a vendor batch.
    with op.batch_alter_table("provider_usage") as batch:
        batch.drop_column("vendor_batch_id")
