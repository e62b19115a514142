"""activation backoff per login, shared by all replicas

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 11:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activation_backoff",
        sa.Column("login_key", sa.String(length=256), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("login_key"),
    )
    with op.batch_alter_table("activation_backoff", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_activation_backoff_last_failure_at"), ["last_failure_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("activation_backoff", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_activation_backoff_last_failure_at"))
    op.drop_table("activation_backoff")
