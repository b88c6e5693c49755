#!/usr/bin/env bash
# Installs the Debian packages the tests drive: a PostgreSQL server, the openssl and
# curl CLIs, and headless Chromium with its driver. Idempotent: it does nothing when
# they are already there. Needs root (or sudo) and Debian's package archive.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing test dependencies: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
# Debian starts a cluster on install; the tests start their own on loopback.
if command -v pg_ctlcluster >/dev/null; then
  for c in $(ls /etc/postgresql 2>/dev/null); do $SUDO pg_ctlcluster "$c" main stop 2>/dev/null || true; done
fi
