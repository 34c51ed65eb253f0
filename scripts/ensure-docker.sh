#!/usr/bin/env bash
# Make sure a Docker engine answers, with the compose and buildx plugins.
# On a fresh Debian machine (as root) this installs docker.io and starts dockerd; elsewhere it only checks.
# The compose/buildx plugins come from Debian sid's packages when the host's own Debian has none: they
# depend on libc6 only and are installed with dpkg from a sid package list kept apart from the system's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

engine_up() { docker info >/dev/null 2>&1; }

if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
  if ! engine_up; then
    need_root "install the Docker engine"
    say "no Docker engine on this machine: installing Debian's docker.io"
    apt_quiet update
    apt_quiet install -y --no-install-recommends docker.io iptables ca-certificates
  fi
fi

if ! engine_up; then
  need_root "start the Docker engine"
  say "the Docker engine is not running: starting dockerd (log in /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do engine_up && break; sleep 1; done
  engine_up || die "dockerd did not come up; see /var/log/dockerd.log"
fi

plugins_missing=()
docker compose version >/dev/null 2>&1 || plugins_missing+=(docker-compose)
docker buildx version >/dev/null 2>&1 || plugins_missing+=(docker-buildx)
if ((${#plugins_missing[@]})); then
  need_root "install ${plugins_missing[*]}"
  say "installing ${plugins_missing[*]} from Debian sid (docker plugins)"
  sid_download "${plugins_missing[@]}"
  dpkg -i "$SID_DEBS"/docker-compose_*.deb "$SID_DEBS"/docker-buildx_*.deb 2>/dev/null ||
    dpkg -i "$SID_DEBS"/*.deb
fi
docker compose version >/dev/null 2>&1 || die "docker compose is not available"
docker buildx version >/dev/null 2>&1 || die "docker buildx is not available"
say "Docker engine ready: $(docker version --format '{{.Server.Version}}')"
