#!/usr/bin/env bash
# The production layout on one machine, on loopback: PostgreSQL, Redis, migrate_once, gunicorn (4 workers),
# two Celery workers (-Q training / -Q prediction), Celery beat, the ML backend. Ctrl-C stops everything.
#   scripts/run_prod.sh              the whole layout (Procfile.prod through scripts/procfile.py)
#   scripts/run_prod.sh env          print the environment it uses (export lines)
#   scripts/run_prod.sh postgres|web one process of Procfile.prod (called by the runner)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
free_port() { $BIN/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

export DATA_DIR=${DATA_DIR:-$PWD/data/prod}
export LS_EXT_PG_PORT=${LS_EXT_PG_PORT:-55433} LS_EXT_REDIS_PORT=${LS_EXT_REDIS_PORT:-56379}
export LS_EXT_WEB_PORT=${LS_EXT_WEB_PORT:-${PORT:-8080}} LS_EXT_ML_PORT=${LS_EXT_ML_PORT:-9090}
export LS_EXT_TRAINING_HEALTH_PORT=${LS_EXT_TRAINING_HEALTH_PORT:-8101}
export LS_EXT_PREDICTION_HEALTH_PORT=${LS_EXT_PREDICTION_HEALTH_PORT:-8102}
export LS_EXT_WORKER_CONCURRENCY=${LS_EXT_WORKER_CONCURRENCY:-2} WEB_CONCURRENCY=${WEB_CONCURRENCY:-4}
export LS_EXT_PG_DIR=${LS_EXT_PG_DIR:-$DATA_DIR/postgres}
export DJANGO_SETTINGS_MODULE=settings.production
export LABEL_STUDIO_BASE_DATA_DIR=$DATA_DIR/label-studio
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:$LS_EXT_PG_PORT/ls_extensions}
export CELERY_BROKER_URL=${CELERY_BROKER_URL:-redis://127.0.0.1:$LS_EXT_REDIS_PORT/0}
export LABEL_STUDIO_HOST=${LABEL_STUDIO_HOST:-http://127.0.0.1:$LS_EXT_WEB_PORT}
export ALLOWED_HOSTS=${ALLOWED_HOSTS:-localhost,127.0.0.1}
export LS_EXT_WEB_BIND=${LS_EXT_WEB_BIND:-127.0.0.1:$LS_EXT_WEB_PORT}
# the layout's own model server passes Label Studio's SSRF check (ls_extensions/ml_backend/ssrf.py)
export LS_EXT_ML_BACKEND_URLS=${LS_EXT_ML_BACKEND_URLS-http://127.0.0.1:$LS_EXT_ML_PORT}
export PYTHONUNBUFFERED=1
mkdir -p "$DATA_DIR" "$LABEL_STUDIO_BASE_DATA_DIR"
if [ -z "${SECRET_KEY:-}" ]; then  # kept in the data dir so that sessions survive a restart
  [ -f "$DATA_DIR/secret_key" ] || (umask 077; $BIN/python -c 'import secrets; print(secrets.token_urlsafe(50))' >"$DATA_DIR/secret_key")
  SECRET_KEY=$(cat "$DATA_DIR/secret_key"); export SECRET_KEY
fi

wait_for_database() {  # up to $1 seconds for the server and the database
  local db=${DATABASE_URL##*/} i
  for ((i = 0; i < $1 * 2; i++)); do
    "$PG_BIN/psql" "$DATABASE_URL" -tAc 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "database $db not reachable" >&2; return 1
}

case "${1:-all}" in
postgres)  # foreground server on loopback; creates the database once it accepts connections
  [ -n "$PG_BIN" ] || { echo "PostgreSQL is not installed (scripts/system-deps.sh)" >&2; exit 1; }
  if [ ! -f "$LS_EXT_PG_DIR/PG_VERSION" ]; then
    mkdir -p "$LS_EXT_PG_DIR"; [ "$(id -u)" = 0 ] && chown postgres "$LS_EXT_PG_DIR"
    as_pg "$PG_BIN/initdb" -D "$LS_EXT_PG_DIR" -U postgres --auth=trust >/dev/null
  fi
  (for _ in $(seq 1 120); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$LS_EXT_PG_PORT" && break; sleep 0.5
  done
  "$PG_BIN/psql" -h 127.0.0.1 -p "$LS_EXT_PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='ls_extensions'" | grep -q 1 \
    || "$PG_BIN/createdb" -h 127.0.0.1 -p "$LS_EXT_PG_PORT" -U postgres ls_extensions) &
  pg_args=(-D "$LS_EXT_PG_DIR" -p "$LS_EXT_PG_PORT" -c listen_addresses=127.0.0.1 -k "$LS_EXT_PG_DIR" -c max_connections=200)
  if [ "$(id -u)" = 0 ]; then exec runuser -u postgres -- "$PG_BIN/postgres" "${pg_args[@]}"; fi
  exec "$PG_BIN/postgres" "${pg_args[@]}"
  ;;
web)  # migrations once (serialized across hosts), then gunicorn
  wait_for_database 120
  [ -n "${LS_EXT_SKIP_MIGRATE:-}" ] || $BIN/python manage.py migrate_once
  exec $BIN/gunicorn -c python:ls_extensions.deploy.gunicorn_conf
  ;;
env)
  env | grep -E '^(DATA_DIR|LS_EXT_|DJANGO_SETTINGS_MODULE|LABEL_STUDIO_|DATABASE_URL|CELERY_BROKER_URL|ALLOWED_HOSTS|WEB_CONCURRENCY|SECRET_KEY)=' \
    | sed 's/^/export /'
  ;;
all)
  H=http://127.0.0.1
  exec $BIN/python scripts/procfile.py Procfile.prod \
    --health "postgres=pg:127.0.0.1:$LS_EXT_PG_PORT" --health "redis=redis:127.0.0.1:$LS_EXT_REDIS_PORT" \
    --health "web=$H:$LS_EXT_WEB_PORT/api/ls-ext/health/" \
    --health "worker-training=$H:$LS_EXT_TRAINING_HEALTH_PORT/health" \
    --health "worker-prediction=$H:$LS_EXT_PREDICTION_HEALTH_PORT/health" \
    --health "ml-backend=$H:$LS_EXT_ML_PORT/health" \
    --ready-message "ls-extensions production layout up: open http://localhost:$LS_EXT_WEB_PORT (data in $DATA_DIR; Ctrl-C stops all)"
  ;;
*) echo "usage: $0 [all|env|postgres|web]" >&2; exit 2 ;;
esac
