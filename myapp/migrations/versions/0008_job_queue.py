"""the RQ queue each job is enqueued on, so a reaper rebuilds only its own queue's jobs

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        # Null on records made before it: they count as the default queue's.
        batch_op.add_column(sa.Column("queue", sa.String(100), nullable=True))


def downgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.drop_column("queue")
