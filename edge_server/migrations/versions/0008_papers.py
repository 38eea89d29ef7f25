"""sealed papers: ciphertext, nonce, wrapped key and the countdowns on the paper row

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

COLUMNS = ('sealed_for', 'ciphertext', 'nonce', 'sha256', 'wrapped_key', 'question_seconds', 'source_name',
           'imported_by', 'imported_at', 'released_at')


def upgrade():
    with op.batch_alter_table('paper', recreate='never') as batch:
        batch.add_column(sa.Column('sealed_for', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('ciphertext', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('nonce', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('sha256', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('wrapped_key', sa.Text(), nullable=True))
        batch.add_column(sa.Column('question_seconds', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('source_name', sa.String(length=255), nullable=False, server_default=''))
        batch.add_column(sa.Column('imported_by', sa.String(length=80), nullable=False, server_default=''))
        batch.add_column(sa.Column('imported_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('released_at', sa.DateTime(timezone=True), nullable=True))
    # The countdowns of papers written before sealing (plaintext question rows), so the schedule
    # keeps working for them; their text stays where it is until the paper is imported sealed.
    conn = op.get_bind()
    paper = sa.table('paper', sa.column('id', sa.Integer), sa.column('question_seconds', sa.JSON))
    rows = conn.execute(sa.text('SELECT paper_id, seconds FROM question ORDER BY paper_id, position')).all()
    seconds: dict[int, list[int]] = {}
    for paper_id, value in rows:
        seconds.setdefault(paper_id, []).append(value)
    for paper_id, values in seconds.items():
        conn.execute(paper.update().where(paper.c.id == paper_id).values(question_seconds=values))


def downgrade():
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): recreating ``paper`` would break the
    # foreign keys of ``question`` and ``sitting`` that point at it.
    with op.batch_alter_table('paper', recreate='never') as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
