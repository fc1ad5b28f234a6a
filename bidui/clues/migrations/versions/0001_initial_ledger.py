"""initial ledger

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clues',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('rule_code', sa.String(length=40), nullable=False),
    sa.Column('rule_title', sa.String(length=100), nullable=False),
    sa.Column('category', sa.String(length=30), nullable=False),
    sa.Column('subject_key', sa.Text(), nullable=False),
    sa.Column('subject_person_key', sa.String(length=18), nullable=True),
    sa.Column('subject_id_number', sa.String(length=40), nullable=True),
    sa.Column('subject_name', sa.String(length=64), nullable=True),
    sa.Column('household_code', sa.String(length=40), nullable=False),
    sa.Column('hukou_number', sa.String(length=40), nullable=False),
    sa.Column('county_code', sa.String(length=12), nullable=False),
    sa.Column('township_code', sa.String(length=12), nullable=False),
    sa.Column('village_code', sa.String(length=12), nullable=True),
    sa.Column('household_status', sa.String(length=20), nullable=True),
    sa.Column('registered_year', sa.Integer(), nullable=True),
    sa.Column('evidence_dataset', sa.String(length=40), nullable=True),
    sa.Column('evidence_key', sa.Text(), nullable=False),
    sa.Column('evidence_date', sa.Date(), nullable=True),
    sa.Column('evidence_hash', sa.String(length=64), nullable=False),
    sa.Column('link_method', sa.String(length=10), nullable=True),
    sa.Column('link_score', sa.Float(), nullable=True),
    sa.Column('link_explanation', sa.Text(), nullable=True),
    sa.Column('before_registration', sa.Boolean(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=True),
    sa.Column('finding', sa.Text(), nullable=True),
    sa.Column('verifier_name', sa.String(length=64), nullable=True),
    sa.Column('verifier_position', sa.String(length=64), nullable=True),
    sa.Column('verified_on', sa.Date(), nullable=True),
    sa.Column('return_reason', sa.Text(), nullable=True),
    sa.Column('evidence_gone', sa.Boolean(), nullable=False),
    sa.Column('first_seen', sa.Date(), nullable=False),
    sa.Column('last_seen', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rule_code', 'subject_key', 'evidence_key', name='uq_clue_identity')
    )
    with op.batch_alter_table('clues', schema=None) as batch_op:
        batch_op.create_index('ix_clues_household', ['household_code'], unique=False)
        batch_op.create_index('ix_clues_township_status', ['township_code', 'status'], unique=False)
        batch_op.create_index('ix_clues_village', ['village_code'], unique=False)

    op.create_table('divisions',
    sa.Column('code', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('level', sa.String(length=20), nullable=False),
    sa.Column('parent_code', sa.String(length=12), nullable=True),
    sa.Column('rural', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('publish_runs',
    sa.Column('night', sa.Date(), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('new', sa.Integer(), nullable=False),
    sa.Column('seen', sa.Integer(), nullable=False),
    sa.Column('gone', sa.Integer(), nullable=False),
    sa.Column('reraised', sa.Integer(), nullable=False),
    sa.Column('suppressed', sa.Integer(), nullable=False),
    sa.Column('skipped_rules', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('night')
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('scope', sa.String(length=12), nullable=False),
    sa.Column('position', sa.String(length=64), nullable=True),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('clue_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('clue_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['clue_id'], ['clues.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('clue_events', schema=None) as batch_op:
        batch_op.create_index('ix_events_at', ['at'], unique=False)
        batch_op.create_index('ix_events_clue', ['clue_id'], unique=False)

    op.create_table('evidence_snapshots',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('clue_id', sa.Integer(), nullable=False),
    sa.Column('night', sa.Date(), nullable=False),
    sa.Column('evidence_hash', sa.String(length=64), nullable=False),
    sa.Column('record', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['clue_id'], ['clues.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('clue_id', 'evidence_hash', name='uq_evidence_version')
    )


def downgrade() -> None:
    op.drop_table('evidence_snapshots')
    with op.batch_alter_table('clue_events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_clue')
        batch_op.drop_index('ix_events_at')

    op.drop_table('clue_events')
    op.drop_table('users')
    op.drop_table('publish_runs')
    op.drop_table('divisions')
    with op.batch_alter_table('clues', schema=None) as batch_op:
        batch_op.drop_index('ix_clues_village')
        batch_op.drop_index('ix_clues_township_status')
        batch_op.drop_index('ix_clues_household')

    op.drop_table('clues')
