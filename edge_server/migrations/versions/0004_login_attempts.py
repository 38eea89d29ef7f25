"""staff sign-in attempts for rate limiting and lockout

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'login_attempt',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=80), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempt')),
    )
    op.create_index(op.f('ix_login_attempt_username'), 'login_attempt', ['username'])
    op.create_index(op.f('ix_login_attempt_address'), 'login_attempt', ['address'])
    op.create_index(op.f('ix_login_attempt_at'), 'login_attempt', ['at'])


def downgrade():
    op.drop_index(op.f('ix_login_attempt_at'), table_name='login_attempt')
    op.drop_index(op.f('ix_login_attempt_address'), table_name='login_attempt')
    op.drop_index(op.f('ix_login_attempt_username'), table_name='login_attempt')
    op.drop_table('login_attempt')
