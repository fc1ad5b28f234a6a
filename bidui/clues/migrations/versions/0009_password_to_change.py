"""a password the user did not choose (set by an administrator: a new account's first one, a
reset) must be changed at the next sign-in before any other page opens (`users.must_change_password`);
accounts already on one are found by the audit trail: added or reset by an administrator (the page
or the CLI) and not changed by the user since

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    # (the demo's and fixtures' accounts are added without an actor: not audited, not flagged)
    op.execute(sa.text("""
        UPDATE users SET must_change_password = :flag WHERE username IN (
            SELECT set_by_admin.target FROM audit_events set_by_admin
            WHERE set_by_admin.kind IN ('user_added', 'password_reset')
              AND NOT EXISTS (SELECT 1 FROM audit_events changed
                              WHERE changed.kind = 'password_changed' AND changed.target = set_by_admin.target
                                AND changed.id > set_by_admin.id))""").bindparams(flag=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('must_change_password')
