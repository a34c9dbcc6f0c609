#!/usr/bin/env bash
# `make demo`: prepare the demo shop, run web + worker + beat, and on Ctrl-C stop every
# process it started — the embedded PostgreSQL and Redis too, when this run started them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PATH="$PWD/.venv/bin:$PATH"  # the Procfile runs gunicorn and celery from the venv
# The demo's local conveniences, switched on here and nowhere else: the debug pages and
# browsable API, keyless API calls, open API docs and the storefront. The settings are
# safe without them, and a system check refuses the first two on a host others can reach.
export DEBUG="${DEBUG:-1}"
export RECOMMENDER_REQUIRE_API_KEY="${RECOMMENDER_REQUIRE_API_KEY:-0}"

started_services=0
if [ -z "${DATABASE_URL:-}" ] || [ -z "${CELERY_BROKER_URL:-}" ]; then
    if $PY manage.py services status | grep -q stopped; then
        started_services=1
    fi
fi

stop_services() {
    if [ "$started_services" = 1 ]; then
        started_services=0
        echo "stopping the embedded database and broker this demo started"
        $PY manage.py services stop >/dev/null
    fi
}
trap stop_services EXIT
# Ctrl-C reaches honcho too (same process group); the script itself carries on to clean up.
trap 'exit 130' INT TERM

$PY manage.py services start
$PY manage.py migrate --noinput
$PY manage.py load_demo
$PY manage.py demo_admin
# Behaviour models (EASE, ALS, SASRec) and a ranker learned from the demo's behaviours
# (serving uses what is trained; the ranker only where it beat the blend on validation).
$PY manage.py train_models --no-progress || echo "(behaviour models not trained)"
$PY manage.py train_ranker --max-users 72 --no-progress || echo "(ranker not trained; the fixed blend serves)"

cat <<'MSG'

  Shop:      http://127.0.0.1:8000/
  Admin:     http://127.0.0.1:8000/admin/   (login: admin / recsite-demo)
  Dashboard: http://127.0.0.1:8000/admin/dashboard/
  API docs:  http://127.0.0.1:8000/api/docs/
  Health:    http://127.0.0.1:8000/api/v1/health
  The demo runs with DEBUG=1 and API keys off, on 127.0.0.1 only; production settings
  are the defaults (docs/deploy.md). Keys: `manage.py apikey create NAME --scope read`.
  Stop everything with Ctrl-C.

MSG
# honcho stops web, worker and beat on Ctrl-C; the EXIT trap then stops the servers.
.venv/bin/honcho start || true
