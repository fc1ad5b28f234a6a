"""a person's key may carry its hukou number (one ID number shared by two persons, 一号多人);
link methods former_name and household

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clues') as batch:
        batch.alter_column('subject_person_key', type_=sa.String(length=64), existing_type=sa.String(length=18),
                           existing_nullable=True)
        batch.alter_column('link_method', type_=sa.String(length=16), existing_type=sa.String(length=10),
                           existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('clues') as batch:
        batch.alter_column('subject_person_key', type_=sa.String(length=18), existing_type=sa.String(length=64),
                           existing_nullable=True)
        batch.alter_column('link_method', type_=sa.String(length=10), existing_type=sa.String(length=16),
                           existing_nullable=True)
