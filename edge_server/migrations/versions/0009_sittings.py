"""sitting settings (per-question duration, early finish, mock required), seat assignment, candidate imports

Revision ID: 0009
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN with constant defaults: in place on SQLite and PostgreSQL (no table copy).
    op.add_column('sitting', sa.Column('question_seconds', sa.Integer(), nullable=True))
    op.add_column('sitting', sa.Column('early_finish_allowed', sa.Boolean(), nullable=False,
                                       server_default=sa.true()))
    op.add_column('sitting', sa.Column('mock_required', sa.Boolean(), nullable=False, server_default=sa.false()))
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite takes a foreign key only inline in ADD COLUMN (alembic would copy the table, which
        # cannot drop ``candidate`` while attempts point at it).
        op.execute('ALTER TABLE candidate ADD COLUMN station_id VARCHAR(64) '
                   'CONSTRAINT fk_candidate_station_id_station REFERENCES station (id)')
    else:
        op.add_column('candidate', sa.Column('station_id', sa.String(length=64), nullable=True))
        op.create_foreign_key(op.f('fk_candidate_station_id_station'), 'candidate', 'station',
                              ['station_id'], ['id'])
    # One candidate per station and sitting (NULLs, the unassigned, do not collide).
    op.create_index('uq_candidate_sitting_station', 'candidate', ['sitting_id', 'station_id'], unique=True)
    op.create_table(
        'candidate_import',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('centre_id', sa.String(length=64), nullable=False),
        sa.Column('sitting_id', sa.String(length=64), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('rows', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('imported', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['centre_id'], ['centre.id'], name=op.f('fk_candidate_import_centre_id_centre')),
        sa.ForeignKeyConstraint(['sitting_id'], ['sitting.id'], name=op.f('fk_candidate_import_sitting_id_sitting')),
        sa.ForeignKeyConstraint(['created_by'], ['staff_user.id'],
                                name=op.f('fk_candidate_import_created_by_staff_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_candidate_import')),
    )
    op.create_index(op.f('ix_candidate_import_sitting_id'), 'candidate_import', ['sitting_id'])


def downgrade():
    op.drop_index(op.f('ix_candidate_import_sitting_id'), table_name='candidate_import')
    op.drop_table('candidate_import')
    op.drop_index('uq_candidate_sitting_station', table_name='candidate')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint(op.f('fk_candidate_station_id_station'), 'candidate', type_='foreignkey')
    with op.batch_alter_table('candidate') as batch:
        batch.drop_column('station_id')
    with op.batch_alter_table('sitting') as batch:
        batch.drop_column('mock_required')
        batch.drop_column('early_finish_allowed')
        batch.drop_column('question_seconds')
