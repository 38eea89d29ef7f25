"""staff fallback codes, a frame per face try, per-centre face threshold and voice prompts

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN with a constant default works in place on SQLite and PostgreSQL (no table copy,
    # which on SQLite would have to drop ``centre`` while other tables point at it).
    op.add_column('centre', sa.Column('face_threshold', sa.Float(), nullable=False, server_default='0.6'))
    op.add_column('centre', sa.Column('voice_prompts', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column('face_try', sa.Column('frame_sha256', sa.String(length=64), nullable=True))
    op.create_table(
        'fallback_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('attempt_id', sa.String(length=32), nullable=False),
        sa.Column('candidate_id', sa.Integer(), nullable=False),
        sa.Column('station_id', sa.String(length=64), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('issued_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('failed_tries', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempt.id'], name=op.f('fk_fallback_code_attempt_id_attempt')),
        sa.ForeignKeyConstraint(['candidate_id'], ['candidate.id'],
                                name=op.f('fk_fallback_code_candidate_id_candidate')),
        sa.ForeignKeyConstraint(['station_id'], ['station.id'], name=op.f('fk_fallback_code_station_id_station')),
        sa.ForeignKeyConstraint(['issued_by'], ['staff_user.id'], name=op.f('fk_fallback_code_issued_by_staff_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fallback_code')),
    )
    op.create_index(op.f('ix_fallback_code_attempt_id'), 'fallback_code', ['attempt_id'])


def downgrade():
    op.drop_index(op.f('ix_fallback_code_attempt_id'), table_name='fallback_code')
    op.drop_table('fallback_code')
    with op.batch_alter_table('face_try') as batch:
        batch.drop_column('frame_sha256')
    with op.batch_alter_table('centre') as batch:
        batch.drop_column('voice_prompts')
        batch.drop_column('face_threshold')
