#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 with a `test` database for the test suite.
# On a machine with trust auth the password is ignored; on a fresh install it is set here.
set -euo pipefail
URL="${EXAMKIOSK_TEST_POSTGRES_URL:-postgresql://postgres:examkiosk@127.0.0.1:5432/test}"
URL="${URL/+psycopg/}"

ready() { psql "$URL" -tAc 'select 1' >/dev/null 2>&1; }
ready && exit 0

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
      || pg_ctlcluster "$version" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL does not start on 127.0.0.1:5432" >&2; exit 1; }

# A fresh cluster: give the postgres role the test password and create the database.
runuser -u postgres -- psql -qc "ALTER ROLE postgres PASSWORD 'examkiosk'" >/dev/null
runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
  || runuser -u postgres -- createdb test
ready || { echo "cannot connect to $URL" >&2; exit 1; }
