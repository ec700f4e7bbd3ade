"""orders by shop and status; no shop_id index a unique constraint begins with

- ``ix_orders_shop_status_placed`` (shop_id, status, placed_at) replaces ``ix_orders_status``:
  the dispatch's snapshot of one shop's pending orders, oldest first, was a walk of every
  shop's pending orders (about 6 ms at 20,000 of them, each tick and shop; 0.2 ms now).
- ``ix_orders_shop_id`` is the prefix of ``uq_orders_shop_source_ext`` and of the new index,
  ``ix_idempotency_records_shop_id`` of ``uq_idempotency_shop_key``: both answered the same
  lookups, and each cost every order intake another B-tree page to write.

Revision ID: 0004
Create Date: 2026-12-02 14:00:00
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orders_shop_status_placed", ["shop_id", "status", "placed_at"], unique=False
        )
        batch_op.drop_index("ix_orders_status")
        batch_op.drop_index("ix_orders_shop_id")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_records_shop_id")


def downgrade() -> None:
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_records_shop_id", ["shop_id"], unique=False)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_shop_id", ["shop_id"], unique=False)
        batch_op.create_index("ix_orders_status", ["status"], unique=False)
        batch_op.drop_index("ix_orders_shop_status_placed")
