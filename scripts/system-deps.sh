#!/usr/bin/env bash
# Debian packages the tests use: Chromium (browser tests), PostgreSQL and Redis (the postgres pass, make run-prod).
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/redis-server ] || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing Debian packages: ${need[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
# the packaged cluster is not used: tests start their own server on loopback (scripts/pg.sh)
if command -v pg_lsclusters >/dev/null && [ "$(id -u)" = 0 ]; then service postgresql stop >/dev/null 2>&1 || true; fi
# the same for Redis: the production layout starts its own redis-server on loopback (scripts/run_prod.sh)
if [ "$(id -u)" = 0 ] && command -v service >/dev/null; then service redis-server stop >/dev/null 2>&1 || true; fi
