"""what the ledger's copy of the register was made from (`publish_runs.register_digest`): a quiet
night whose register is the same moves the copy's night instead of reading and comparing it

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('publish_runs') as batch:
        batch.add_column(sa.Column('register_digest', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('publish_runs') as batch:
        batch.drop_column('register_digest')
