#!/usr/bin/env bash
# Benchmarks: each prints a table comparing ours with Label Studio's own code in the same run.
# Each script runs with its own defaults; dm_sort.py gets a throw-away PostgreSQL on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
for script in benchmarks/video_engine.py benchmarks/video_export.py benchmarks/frames_to_video.py \
  benchmarks/ml_backend.py benchmarks/annotation_latency.py benchmarks/video_preannotation.py \
  benchmarks/video_training.py; do
  echo "== $script"
  $BIN/python "$script"
done
echo "== benchmarks/active_learning.py --quick"
$BIN/python benchmarks/active_learning.py --quick
echo "== benchmarks/mistakes.py"
$BIN/python benchmarks/mistakes.py

export LS_EXT_PG_DIR=$(mktemp -d /tmp/ls-ext-pg.XXXXXX)
export LS_EXT_PG_PORT=$($BIN/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap 'scripts/pg.sh stop; rm -rf "$LS_EXT_PG_DIR"' EXIT
eval "$(scripts/pg.sh start)"
echo "== benchmarks/dm_sort.py"
$BIN/python benchmarks/dm_sort.py --sizes 10000,100000
