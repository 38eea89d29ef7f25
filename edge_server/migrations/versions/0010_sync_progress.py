"""sync progress on the attempt (objects and bytes done / total); the manifests written to central storage

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN with constant defaults: in place on SQLite and PostgreSQL (no table copy).
    op.add_column('attempt', sa.Column('sync_objects_done', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('attempt', sa.Column('sync_objects_total', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('attempt', sa.Column('sync_bytes_done', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('attempt', sa.Column('sync_bytes_total', sa.BigInteger(), nullable=False, server_default='0'))
    op.create_table(
        'central_document',
        sa.Column('key', sa.String(length=500), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('written_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_central_document')),
    )


def downgrade():
    op.drop_table('central_document')
    with op.batch_alter_table('attempt') as batch:
        for column in ('sync_bytes_total', 'sync_bytes_done', 'sync_objects_total', 'sync_objects_done'):
            batch.drop_column(column)
