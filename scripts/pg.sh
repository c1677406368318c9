#!/usr/bin/env bash
# A throw-away PostgreSQL server on loopback for tests and benchmarks.
#   scripts/pg.sh start   -> prints the environment to use it (export lines)
#   scripts/pg.sh stop
# Data lives in $LS_EXT_PG_DIR (default /tmp/ls-ext-pg); port $LS_EXT_PG_PORT (default 55432).
set -euo pipefail
DIR=${LS_EXT_PG_DIR:-/tmp/ls-ext-pg}
PORT=${LS_EXT_PG_PORT:-55432}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$BIN" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
start)
  if [ ! -f "$DIR/PG_VERSION" ]; then
    mkdir -p "$DIR"; [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    as_pg "$BIN/initdb" -D "$DIR" -U postgres --auth=trust >/dev/null
  fi
  if ! as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w \
      -o "-p $PORT -c listen_addresses=127.0.0.1 -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
  fi
  "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='ls_extensions'" | grep -q 1 \
    || "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres ls_extensions
  echo "export DJANGO_DB=postgresql POSTGRE_HOST=127.0.0.1 POSTGRE_PORT=$PORT POSTGRE_USER=postgres POSTGRE_PASSWORD= POSTGRE_NAME=ls_extensions"
  ;;
stop)
  as_pg "$BIN/pg_ctl" -D "$DIR" -m fast stop >/dev/null 2>&1 || true
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
