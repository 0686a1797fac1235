"""jobs in pieces (batches and sequences), and generated profiles

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.add_column(sa.Column("group_mode", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("parent_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("progress_percent", sa.Float(), nullable=True))
        batch_op.create_foreign_key(
            "fk_tracked_jobs_parent_id", "tracked_jobs", ["parent_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_tracked_jobs_parent_id", ["parent_id"])
    op.create_table(
        "profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("traits", sa.JSON(), nullable=False),
        sa.Column("background", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    op.create_index("ix_profiles_user_id", "profiles", ["user_id"])


def downgrade():
    op.drop_index("ix_profiles_user_id", table_name="profiles")
    op.drop_table("profiles")
    with op.batch_alter_table("tracked_jobs") as batch_op:
        batch_op.drop_index("ix_tracked_jobs_parent_id")
        batch_op.drop_constraint("fk_tracked_jobs_parent_id", type_="foreignkey")
        for column in ("progress_percent", "name", "position", "parent_id", "group_mode"):
            batch_op.drop_column(column)
