"""each piece's weight in its record, so a parent's aggregate is rebuilt from records alone

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: The stage weights of ``generate_profile`` when this migration was written; other
#: pieces weighed 1, as a record without a weight still does.
_STAGE_WEIGHTS = {"traits": 1, "background": 2, "summary": 1}


def upgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.add_column(sa.Column("weight", sa.Integer(), nullable=True))
    jobs = sa.table("tracked_jobs", sa.column("kind"), sa.column("weight"))
    for stage, weight in _STAGE_WEIGHTS.items():
        op.execute(
            jobs.update().where(jobs.c.kind == f"generate_profile.{stage}").values(weight=weight)
        )


def downgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.drop_column("weight")
