"""one-time station enrolment codes and the enrolment tries behind their rate limit

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'enrolment_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('centre_id', sa.String(length=64), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('station_id', sa.String(length=64), nullable=True),
        sa.Column('used_from', sa.String(length=64), nullable=False),
        sa.Column('hostname', sa.String(length=255), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['centre_id'], ['centre.id'], name=op.f('fk_enrolment_code_centre_id_centre')),
        sa.ForeignKeyConstraint(['created_by'], ['staff_user.id'],
                                name=op.f('fk_enrolment_code_created_by_staff_user')),
        sa.ForeignKeyConstraint(['station_id'], ['station.id'], name=op.f('fk_enrolment_code_station_id_station')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_enrolment_code')),
        sa.UniqueConstraint('code_hash', name=op.f('uq_enrolment_code_code_hash')),
    )
    op.create_table(
        'enrolment_try',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_enrolment_try')),
    )
    op.create_index(op.f('ix_enrolment_try_address'), 'enrolment_try', ['address'])
    op.create_index(op.f('ix_enrolment_try_at'), 'enrolment_try', ['at'])


def downgrade():
    op.drop_index(op.f('ix_enrolment_try_at'), table_name='enrolment_try')
    op.drop_index(op.f('ix_enrolment_try_address'), table_name='enrolment_try')
    op.drop_table('enrolment_try')
    op.drop_table('enrolment_code')
