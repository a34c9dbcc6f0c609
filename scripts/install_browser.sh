#!/usr/bin/env bash
# Installs what the browser tests (tests/demo/test_browser.py) drive: Debian's Chromium and a CJK
# font so Chinese text renders in screenshots. Idempotent: installs only what is missing.
# Playwright's own browser download (`playwright install`) is not used.
set -euo pipefail

CHROMIUM="${RECSITE_CHROMIUM:-/usr/bin/chromium}"

have_chromium() { [ -x "$CHROMIUM" ] || command -v chromium >/dev/null 2>&1; }
have_cjk_font() { command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh family 2>/dev/null)" ]; }

missing=()
have_chromium || missing+=(chromium)
have_cjk_font || missing+=(fonts-noto-cjk)

if [ ${#missing[@]} -eq 0 ]; then
    echo "install_browser: chromium and a CJK font are already installed"
    exit 0
fi

fail() {
    echo "install_browser: $1" >&2
    echo "install_browser: install them by hand: apt-get install -y ${missing[*]}" >&2
    echo "install_browser: (or point RECSITE_CHROMIUM at a Chromium binary)" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]} and apt-get is not available"

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        fail "missing ${missing[*]}, and installing needs root (run as root or with sudo)"
    fi
fi

echo "install_browser: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq || fail "apt-get update failed"
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install ${missing[*]} failed"

have_chromium || fail "chromium is still missing after apt-get install"
have_cjk_font || fail "no CJK font is visible to fontconfig after apt-get install"
echo "install_browser: done ($("$CHROMIUM" --version 2>/dev/null || command -v chromium))"
