"""the register's households and members as of the latest published night (issue 19: the
inspection sample draws from every household of a village; the household file lists its members)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'register_households',
        sa.Column('household_code', sa.String(length=40), primary_key=True),
        sa.Column('county_code', sa.String(length=12), nullable=False),
        sa.Column('township_code', sa.String(length=12), nullable=False),
        sa.Column('village_code', sa.String(length=12), nullable=False),
        sa.Column('head_name', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=True),
        sa.Column('registered_year', sa.Integer(), nullable=True),
        sa.Column('member_count', sa.Integer(), nullable=False),
        sa.Column('night', sa.Date(), nullable=False),
    )
    op.create_index('ix_register_households_village', 'register_households', ['village_code'])
    op.create_table(
        'register_members',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('household_code', sa.String(length=40), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('person_key', sa.Text(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=True),
        sa.Column('relation', sa.String(length=20), nullable=True),
        sa.Column('sex', sa.String(length=4), nullable=True),
        sa.Column('birth_year', sa.Integer(), nullable=True),
    )
    op.create_index('ix_register_members_household', 'register_members', ['household_code'])


def downgrade() -> None:
    op.drop_index('ix_register_members_household', 'register_members')
    op.drop_table('register_members')
    op.drop_index('ix_register_households_village', 'register_households')
    op.drop_table('register_households')
