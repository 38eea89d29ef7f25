"""help chat threads and messages (help requests, replies, broadcasts to a sitting) and broadcast acknowledgements

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'help_thread',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('centre_id', sa.String(length=64), nullable=False),
        sa.Column('station_id', sa.String(length=64), nullable=False),
        sa.Column('attempt_id', sa.String(length=32), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resolved_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['centre_id'], ['centre.id'], name=op.f('fk_help_thread_centre_id_centre')),
        sa.ForeignKeyConstraint(['station_id'], ['station.id'], name=op.f('fk_help_thread_station_id_station')),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempt.id'], name=op.f('fk_help_thread_attempt_id_attempt')),
        sa.ForeignKeyConstraint(['resolved_by'], ['staff_user.id'],
                                name=op.f('fk_help_thread_resolved_by_staff_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_help_thread')),
        sa.UniqueConstraint('station_id', 'attempt_id', name=op.f('uq_help_thread_station_id_attempt_id')),
    )
    op.create_table(
        'message',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('centre_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('thread_id', sa.Integer(), nullable=True),
        sa.Column('station_id', sa.String(length=64), nullable=True),
        sa.Column('attempt_id', sa.String(length=32), nullable=True),
        sa.Column('sitting_id', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('author', sa.String(length=80), nullable=False),
        sa.Column('recipients', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['centre_id'], ['centre.id'], name=op.f('fk_message_centre_id_centre')),
        sa.ForeignKeyConstraint(['thread_id'], ['help_thread.id'], name=op.f('fk_message_thread_id_help_thread')),
        sa.ForeignKeyConstraint(['station_id'], ['station.id'], name=op.f('fk_message_station_id_station')),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempt.id'], name=op.f('fk_message_attempt_id_attempt')),
        sa.ForeignKeyConstraint(['sitting_id'], ['sitting.id'], name=op.f('fk_message_sitting_id_sitting')),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_user.id'], name=op.f('fk_message_staff_id_staff_user')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message')),
    )
    op.create_index(op.f('ix_message_thread_id'), 'message', ['thread_id'])
    op.create_index(op.f('ix_message_attempt_id'), 'message', ['attempt_id'])
    op.create_index(op.f('ix_message_sitting_id'), 'message', ['sitting_id'])
    op.create_table(
        'message_ack',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('station_id', sa.String(length=64), nullable=False),
        sa.Column('attempt_id', sa.String(length=32), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_ack_message_id_message')),
        sa.ForeignKeyConstraint(['station_id'], ['station.id'], name=op.f('fk_message_ack_station_id_station')),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempt.id'], name=op.f('fk_message_ack_attempt_id_attempt')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_ack')),
        sa.UniqueConstraint('message_id', 'station_id', name=op.f('uq_message_ack_message_id_station_id')),
    )


def downgrade():
    op.drop_table('message_ack')
    op.drop_index(op.f('ix_message_sitting_id'), table_name='message')
    op.drop_index(op.f('ix_message_attempt_id'), table_name='message')
    op.drop_index(op.f('ix_message_thread_id'), table_name='message')
    op.drop_table('message')
    op.drop_table('help_thread')
