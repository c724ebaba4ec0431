#!/usr/bin/env bash
# Debian packages the tests need: Prometheus (real TSDB), VictoriaMetrics (the second
# Prometheus-compatible store PrometheusSource is tested against), Chromium (browser tests,
# offline report checks). Runs `apt-get update` once, and only when something is missing.
set -euo pipefail
packages=(prometheus victoria-metrics chromium)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "system packages present: ${packages[*]}"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -q
# Service start-up scripts are not wanted: the sandbox starts its own Prometheus on loopback.
DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian's package starts a system Prometheus where it can; we run our own, so stop theirs.
if command -v service >/dev/null 2>&1; then
  $SUDO service prometheus stop >/dev/null 2>&1 || true
  $SUDO service victoria-metrics stop >/dev/null 2>&1 || true
fi
