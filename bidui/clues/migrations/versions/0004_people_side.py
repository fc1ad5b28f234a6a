"""the signer's real name on the user; attachments of verifications; the administrators' audit trail

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('real_name', sa.String(length=64), nullable=True))
    op.create_table(
        'attachments',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('clue_id', sa.Integer(), sa.ForeignKey('clues.id'), nullable=False),
        sa.Column('clue_version', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('media_type', sa.String(length=40), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=100), nullable=False),
        sa.Column('uploaded_by', sa.String(length=64), nullable=False),
        sa.Column('uploaded_at', sa.DateTime(), nullable=False),
        sa.Column('removed', sa.Boolean(), nullable=False),
    )
    op.create_index('ix_attachments_clue', 'attachments', ['clue_id'])
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('target', sa.String(length=100), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=True),
    )
    op.create_index('ix_audit_at', 'audit_events', ['at'])


def downgrade() -> None:
    op.drop_index('ix_audit_at', 'audit_events')
    op.drop_table('audit_events')
    op.drop_index('ix_attachments_clue', 'attachments')
    op.drop_table('attachments')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('real_name')
