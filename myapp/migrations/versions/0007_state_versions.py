"""each job's version (the order of its states) and the state it was published as

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: myapp.ordering.FIRST when this migration was written: a record made before
#: versions counts as its job's first state.
_FIRST = 2**24


def upgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.add_column(
            sa.Column("version", sa.BigInteger(), nullable=False, server_default=str(_FIRST))
        )
        batch_op.add_column(sa.Column("state", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.drop_column("state")
        batch_op.drop_column("version")
