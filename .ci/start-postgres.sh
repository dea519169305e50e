#!/usr/bin/env bash
# Start Debian's PostgreSQL cluster on 127.0.0.1:5432 and create the test role and database.
# Idempotent; prints the SQLAlchemy URL the tests read from CARTSIGHT_TEST_PG_URL.
set -euo pipefail
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q "^$ver main"; then
  pg_createcluster "$ver" main >/dev/null
fi
if ! pg_lsclusters -h | grep -q "^$ver main .* online"; then
  pg_ctlcluster "$ver" main start
fi
for _ in $(seq 1 30); do
  su postgres -c "pg_isready -q -h 127.0.0.1 -p 5432" && break
  sleep 1
done
# a throwaway cluster for the tests: no commit waits for the disk (a crash could lose the last commits, which no
# test needs); every test's store commits dozens of times, and creating or emptying its tables syncs each file
su postgres -c "psql -q -p 5432 -c 'ALTER SYSTEM SET fsync = off' -c 'ALTER SYSTEM SET synchronous_commit = off' \
  -c 'ALTER SYSTEM SET full_page_writes = off' -c 'SELECT pg_reload_conf()'" >/dev/null
su postgres -c "psql -q -p 5432 -tc \"SELECT 1 FROM pg_roles WHERE rolname='cartsight'\"" | grep -q 1 \
  || su postgres -c "psql -q -p 5432 -c \"CREATE ROLE cartsight LOGIN SUPERUSER PASSWORD 'cartsight'\""
su postgres -c "psql -q -p 5432 -tc \"SELECT 1 FROM pg_database WHERE datname='cartsight_test'\"" | grep -q 1 \
  || su postgres -c "createdb -p 5432 -O cartsight cartsight_test"
echo "postgresql+psycopg://cartsight:cartsight@127.0.0.1:5432/cartsight_test"
