"""order events: no index on shop_id

``ix_order_events_shop_id`` answered no query: an order's events are read by ``order_id``
(its history, the KPIs' delivered times), and shops are never deleted (the foreign key needs
no index of its own). Each event's insert still wrote a page of it at a random place among the
shops: one of the six or so pages an order intake writes to the log, and one more at each
assignment, pickup and delivery (session 13).

Revision ID: 0008
Create Date: 2026-12-07 20:45:00
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.drop_index("ix_order_events_shop_id")


def downgrade() -> None:
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.create_index("ix_order_events_shop_id", ["shop_id"], unique=False)
