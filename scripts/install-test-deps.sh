#!/usr/bin/env bash
# Installs the Debian packages the tests drive: a PostgreSQL server, the openssl and
# curl CLIs, pgrep (procps), headless Chromium with its driver, nginx, Redis, systemd's
# systemd-analyze and 7z. Idempotent: it
# installs nothing when they are already there. Needs root (or sudo) and Debian's
# package archive; on a fresh Debian 12 as root (CI) no sudo is needed.
#
# The tests start their own throwaway PostgreSQL cluster on a free loopback port
# (tests/support/postgres.py), so the cluster Debian creates and starts on install is
# stopped and set to manual start: it must not hold port 5432 or use memory. On a
# developer's machine that already had PostgreSQL, its clusters are left alone unless
# CI=true.
set -euo pipefail

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    SUDO=()
  fi
fi

have_pg_server() {
  command -v initdb >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v pgrep >/dev/null || need+=(procps)
command -v wrk >/dev/null || need+=(wrk)  # the bench harness tests run the Lua load scripts
have_pg_server || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v certutil >/dev/null || need+=(libnss3-tools)
# tests/deploy: a real nginx in front of two instances sharing a Redis.
{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } || need+=(nginx)
{ command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ]; } || need+=(redis-server)
# tests/ops: `systemd-analyze verify` checks deploy/systemd/tessera.service; 7z opens the
# AES-encrypted credentials zip (plain unzip cannot).
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v 7z >/dev/null || need+=(p7zip-full)

installed_pg=false
installed_services=()
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
    echo "install-test-deps: need root to install ${need[*]}; run as root or install sudo" >&2
    exit 1
  fi
  # `env` carries the variable through sudo, which resets the environment.
  apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=3)
  "${apt[@]}" update
  "${apt[@]}" install -y --no-install-recommends "${need[@]}"
  for p in "${need[@]}"; do
    case "$p" in
      postgresql) installed_pg=true ;;
      nginx|redis-server) installed_services+=("$p") ;;
    esac
  done
  if ! have_pg_server && [ "$installed_pg" = true ]; then
    echo "install-test-deps: postgresql installed but no initdb under /usr/lib/postgresql/*/bin" >&2
    exit 1
  fi
fi

# Stop Debian's own clusters and keep them from starting again at boot. Only the
# clusters this run created, or every cluster under CI; harmless when none runs.
if { [ "$installed_pg" = true ] || [ "${CI:-}" = true ]; } && command -v pg_lsclusters >/dev/null; then
  # Write access to /etc/postgresql is needed; without root or sudo, leave them be.
  if [ "$(id -u)" -eq 0 ] || [ ${#SUDO[@]} -gt 0 ]; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name _port status _rest; do
      [ -n "$ver" ] && [ -n "$name" ] || continue
      if [ "$status" != down ]; then
        echo "stopping the Debian PostgreSQL cluster $ver/$name (the tests start their own)"
        "${SUDO[@]}" pg_ctlcluster "$ver" "$name" stop -m fast || true
      fi
      conf="/etc/postgresql/$ver/$name/start.conf"
      if [ -f "$conf" ] && grep -qxE '[[:space:]]*auto[[:space:]]*' "$conf"; then
        "${SUDO[@]}" sed -i -E 's/^[[:space:]]*auto[[:space:]]*$/manual/' "$conf"
      fi
    done
    # With systemd running, also keep the unit from starting the clusters at boot.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
      "${SUDO[@]}" systemctl disable --now postgresql.service >/dev/null 2>&1 || true
    fi
  fi
fi
# The nginx and Redis that Debian starts on install would hold ports 80 and 6379: the tests
# start their own (tests/support/{nginx,redis_server}.py). Stop them and keep them from
# starting at boot: the ones this run installed, or both under CI.
services=("${installed_services[@]}")
[ "${CI:-}" = true ] && services=(nginx redis-server)
if [ ${#services[@]} -gt 0 ] && { [ "$(id -u)" -eq 0 ] || [ ${#SUDO[@]} -gt 0 ]; }; then
  for svc in "${services[@]}"; do
    [ -e "/etc/init.d/$svc" ] || [ -e "/lib/systemd/system/$svc.service" ] || continue
    echo "stopping the Debian $svc service (the tests start their own)"
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
      "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
    else
      "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi
exit 0
