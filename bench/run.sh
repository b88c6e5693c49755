#!/usr/bin/env bash
# make bench: install what the benchmark drives, then run bench/run.py.
#
#   bench/run.sh [run.py options]      e.g. bench/run.sh --scenarios s1 --duration 3s
#
# On a fresh Debian machine (as root, or with sudo) it installs, when missing: wrk,
# nginx-light (the client-side TLS originator of the mTLS load), openssl, Node.js and
# npm (for node-oidc-provider), and the PostgreSQL server binaries (through
# scripts/install-test-deps.sh, which also stops the cluster Debian starts). Then the
# `bench` extra (matplotlib) into the project's venv. The peers' own dependencies
# (npm ci, a venv for the Authlib reference) are installed by run.py in bench/peers-work/.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=3)

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v openssl >/dev/null || need+=(openssl)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}"
  "${apt[@]}" update
  "${apt[@]}" install -y --no-install-recommends "${need[@]}"
  # Debian starts nginx after installing it; the benchmark runs its own.
  if [[ " ${need[*]} " == *" nginx-light "* ]] && command -v systemctl >/dev/null; then
    "${SUDO[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
fi
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  scripts/install-test-deps.sh
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -e '.[test,bench]'
elif ! "$VENV/bin/python" -c 'import matplotlib, pytest' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q -e '.[test,bench]'
fi

exec "$VENV/bin/python" bench/run.py "$@"
