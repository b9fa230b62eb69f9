"""The limits every routing process shares: window counters, reservations of calls in flight, blocks and circuits,
and the one row whose lock serializes changes to them (see ledger/limit_store.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    lock = op.create_table(
        "shared_lock",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("ticks", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(lock, [{"id": 1, "ticks": 0}])
    op.create_table(
        "shared_counters",
        sa.Column("scope", sa.String(length=300), primary_key=True),
        sa.Column("bucket_s", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("bucket_start", sa.BigInteger(), primary_key=True, autoincrement=False),
        *(
            sa.Column(name, sa.Float(), nullable=False)
            for name in ("requests", "tokens", "cost", "reserved_requests", "reserved_tokens", "reserved_cost")
        ),
    )
    op.create_table(
        "shared_reservations",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("requests", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
    )
    op.create_index("ix_shared_reservations_expires_at", "shared_reservations", ["expires_at"])
    op.create_table(
        "shared_blocks",
        sa.Column("scope", sa.String(length=300), primary_key=True),
        sa.Column("until", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
    )
    op.create_table(
        "shared_circuits",
        sa.Column("provider_id", sa.String(length=100), primary_key=True),
        sa.Column("open_until", sa.Float(), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shared_circuits")
    op.drop_table("shared_blocks")
    op.drop_index("ix_shared_reservations_expires_at", table_name="shared_reservations")
    op.drop_table("shared_reservations")
    op.drop_table("shared_counters")
    op.drop_table("shared_lock")
