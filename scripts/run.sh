#!/usr/bin/env bash
# Label Studio 1.23.2 with ls_extensions on one machine: SQLite and media in $DATA_DIR, nothing leaving it.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-settings.offline}
export LABEL_STUDIO_BASE_DATA_DIR=${DATA_DIR:-$PWD/data}
PORT=${PORT:-8080}
# the model server of the README (serve_ml_backend --port 9090) is allowed through Label Studio's SSRF check
export LS_EXT_ML_BACKEND_URLS=${LS_EXT_ML_BACKEND_URLS:-http://127.0.0.1:9090 http://localhost:9090}
mkdir -p "$LABEL_STUDIO_BASE_DATA_DIR"
cat <<MSG
ls-extensions: Label Studio with every call-home channel off.
  data (SQLite, uploads): $LABEL_STUDIO_BASE_DATA_DIR
  open http://localhost:$PORT and sign up: the first account you create is yours
  (or log in with an account made by: .venv/bin/python manage.py createsuperuser)
  a Celery worker runs beside it for retraining and uncertainty jobs (embedded SQLite broker)
MSG
# one Celery worker (with the periodic sweeps) for retraining and uncertainty jobs; it stops with the server
LABEL_STUDIO_HOST=http://localhost:$PORT .venv/bin/celery -A ls_extensions worker -B --pool solo --concurrency 1 \
  -l warning -s "$LABEL_STUDIO_BASE_DATA_DIR/celerybeat-schedule" &
trap 'kill $! 2>/dev/null' EXIT
.venv/bin/label-studio start --no-browser --internal-host "${BIND:-127.0.0.1}" -p "$PORT"
