"""hash-chained audit log on the event table

Revision ID: 0003
Revises: 0002
"""
import hashlib
import json
from datetime import timezone

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _hash(row, prev):
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=timezone.utc)
    payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload or "{}")
    body = {"prev": prev, "at": at.astimezone(timezone.utc).isoformat(timespec="microseconds"), "kind": row.kind,
            "source": row.source, "station": row.station_id, "attempt": row.attempt_id, "payload": payload}
    data = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def upgrade():
    with op.batch_alter_table('event') as batch:
        batch.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    conn = op.get_bind()
    prev = ""
    rows = conn.execute(sa.text(
        "SELECT id, at, kind, source, station_id, attempt_id, payload FROM event ORDER BY id")).fetchall()
    for row in rows:  # chain the events written before this revision
        digest = _hash(row, prev)
        conn.execute(sa.text("UPDATE event SET prev_hash = :p, hash = :h WHERE id = :i"),
                     {"p": prev, "h": digest, "i": row.id})
        prev = digest
    with op.batch_alter_table('event') as batch:
        batch.alter_column('prev_hash', nullable=False, server_default='')
        batch.alter_column('hash', nullable=False, server_default='')
        batch.create_unique_constraint('uq_event_prev_hash', ['prev_hash'])


def downgrade():
    with op.batch_alter_table('event') as batch:
        batch.drop_constraint('uq_event_prev_hash', type_='unique')
        batch.drop_column('hash')
        batch.drop_column('prev_hash')
