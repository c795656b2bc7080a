"""poller state: what GitPoller/SVNPoller remember between polls

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('poller_state',
    sa.Column('poller', sa.Text(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('poller', 'name', name=op.f('pk_poller_state'))
    )


def downgrade() -> None:
    op.drop_table('poller_state')
