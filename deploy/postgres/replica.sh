#!/bin/bash
# The streaming replica: on first start, copy the primary (pg_basebackup -R writes standby.signal
# and primary_conninfo), then run PostgreSQL as a hot standby.
set -euo pipefail
export PGDATA=/var/lib/postgresql/data/pgdata
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  gosu postgres pg_basebackup --host=postgres --username=replicator --pgdata="$PGDATA" \
    --wal-method=stream --write-recovery-conf --progress
fi
exec gosu postgres postgres -c hot_standby=on
