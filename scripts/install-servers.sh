#!/bin/sh
# Install the servers the test suite runs for real, from Debian's packages, when they are missing:
# prometheus (+ promtool), prometheus-alertmanager (+ amtool) and redis-server. Idempotent.
set -eu

missing=""
command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ] || missing="$missing prometheus"
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
    || [ -x /usr/bin/prometheus-alertmanager ] || missing="$missing prometheus-alertmanager"
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing="$missing redis-server"

if [ -z "$missing" ]; then
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install-servers: installing$missing" >&2
$sudo apt-get update -q
# shellcheck disable=SC2086  # word splitting of the package list is intended
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
# Debian starts the services it installs; the tests start their own on free ports.
for service in prometheus prometheus-alertmanager redis-server; do
    $sudo systemctl disable --now "$service" >/dev/null 2>&1 || true
done
