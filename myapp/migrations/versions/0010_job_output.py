"""a job's output, what its body wrote with progress.output, kept past Redis

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.add_column(sa.Column("output", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("output_truncated", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.drop_column("output_truncated")
        batch_op.drop_column("output")
