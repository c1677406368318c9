#!/usr/bin/env bash
# Benchmarks: each prints a table comparing ours with Label Studio's own code in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
for script in benchmarks/video_engine.py benchmarks/video_export.py benchmarks/frames_to_video.py benchmarks/ml_backend.py \
  benchmarks/dm_sort.py benchmarks/annotation_latency.py; do
  echo "== $script"
  .venv/bin/python "$script" "$@"
done
