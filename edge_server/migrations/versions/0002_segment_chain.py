"""signed segment chain, station keys, attempt end reason

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('station') as batch:
        batch.add_column(sa.Column('public_key', sa.String(length=64), nullable=True))
    with op.batch_alter_table('attempt') as batch:
        batch.add_column(sa.Column('end_reason', sa.String(length=64), nullable=False, server_default=''))
    with op.batch_alter_table('segment') as batch:
        batch.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=False, server_default=''))
        batch.add_column(sa.Column('entry_hash', sa.String(length=64), nullable=False, server_default=''))
        batch.add_column(sa.Column('signature', sa.String(length=128), nullable=False, server_default=''))


def downgrade():
    with op.batch_alter_table('segment') as batch:
        batch.drop_column('signature')
        batch.drop_column('entry_hash')
        batch.drop_column('prev_hash')
    with op.batch_alter_table('attempt') as batch:
        batch.drop_column('end_reason')
    with op.batch_alter_table('station') as batch:
        batch.drop_column('public_key')
