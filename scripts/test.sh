#!/usr/bin/env bash
# The whole suite: a SQLite pass (browser tests included), Label Studio's own tests over the areas we
# touch under our settings (tests/label_studio_suite: their own pytest process and rootdir), then the
# tests marked `postgres` against a throw-away PostgreSQL server on loopback, stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export LS_EXT_PG_DIR=${LS_EXT_PG_DIR:-$(mktemp -d /tmp/ls-ext-pg.XXXXXX)}
trap 'scripts/pg.sh stop; rm -rf "$LS_EXT_PG_DIR"' EXIT

$BIN/pytest -q -m "not postgres" "$@"
$BIN/python tests/label_studio_suite/run.py -q

export LS_EXT_PG_PORT=${LS_EXT_PG_PORT:-$($BIN/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
pg_env=$(scripts/pg.sh start)  # a failed start stops the run here, not in the tests
eval "$pg_env"
$BIN/pytest -q -m postgres "$@"
