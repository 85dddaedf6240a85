#!/usr/bin/env bash
# Install the Debian packages the test suite drives for real (redis-server,
# chromium; nginx and caddy, which check and run docs/deploy.md's proxy
# configurations; wrk for benchmarks) when they are missing. Idempotent; quiet when
# everything is already there.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "${TIPPEN_BENCH_DEPS:-0}" = 1 ]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi
[ ${#need[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${need[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true   # a stale index still finds most packages
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
