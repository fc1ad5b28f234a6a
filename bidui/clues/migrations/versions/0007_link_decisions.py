"""verdicts that teach the linker (issue 18): a 不属实 verification may say 不是本人
(`clues.outcome_detail`), and `link_decisions` keeps each record↔person pair a verification
decided (cannot-link or must-link), who decided it and when, and who revoked it

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clues') as batch:
        batch.add_column(sa.Column('outcome_detail', sa.String(length=20), nullable=True))
    op.create_table(
        'link_decisions',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('dataset', sa.String(length=40), nullable=False),
        sa.Column('role', sa.String(length=40), nullable=False),
        sa.Column('record_id_number', sa.String(length=40), nullable=False),
        sa.Column('record_name', sa.String(length=64), nullable=False),
        sa.Column('person_key', sa.String(length=64), nullable=False),
        sa.Column('clue_id', sa.Integer(), sa.ForeignKey('clues.id'), nullable=False),
        sa.Column('township_code', sa.String(length=12), nullable=False),
        sa.Column('decided_by', sa.String(length=64), nullable=False),
        sa.Column('verifier_name', sa.String(length=64), nullable=False),
        sa.Column('decided_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_by', sa.String(length=64), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.Column('revoke_reason', sa.Text(), nullable=True),
    )
    op.create_index('ix_link_decisions_clue', 'link_decisions', ['clue_id'])


def downgrade() -> None:
    op.drop_index('ix_link_decisions_clue', 'link_decisions')
    op.drop_table('link_decisions')
    with op.batch_alter_table('clues') as batch:
        batch.drop_column('outcome_detail')
