#!/usr/bin/env bash
# The whole suite: a SQLite pass (browser tests included), then the tests marked `postgres`
# against a throw-away PostgreSQL server on loopback, stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export LS_EXT_PG_DIR=${LS_EXT_PG_DIR:-$(mktemp -d /tmp/ls-ext-pg.XXXXXX)}
trap 'scripts/pg.sh stop; rm -rf "$LS_EXT_PG_DIR"' EXIT

$BIN/pytest -q -m "not postgres" "$@"

eval "$(scripts/pg.sh start)"
$BIN/pytest -q -m postgres "$@"
