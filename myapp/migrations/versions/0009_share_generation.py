"""a job's share generation: revoking its share links makes it grow

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.add_column(
            sa.Column("share_generation", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.drop_column("share_generation")
