"""Keep the list price beside what was charged: a call on a subscription login is charged nothing at the margin
(its fixed fee pays for it), and its list-price equivalent, what the CLI reports, is kept in `list_price_usd`
(NULL where it equals `cost_usd`), on attempts and on the kept totals of pruned ones.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("provider_usage", "usage_totals")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("list_price_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    # An older Switchboard counts `cost_usd` only: a login's calls read as free there, as they were charged.
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("list_price_usd")
