#!/usr/bin/env bash
# Make the Debian sid base image locally when no image registry can be reached.
# Usage: bootstrap-base.sh [IMAGE]   (default debian:sid)
# On a machine that can pull, this only pulls. Otherwise it builds a minimal sid root file system with
# mmdebstrap from this machine's own Debian mirror and imports it under the same name, so the Dockerfile's
# FROM line stays the one a user's machine pulls.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
image=${1:-debian:sid}

if docker image inspect "$image" >/dev/null 2>&1; then exit 0; fi
if timeout 60 docker pull -q "$image" >/dev/null 2>&1; then say "pulled $image"; exit 0; fi

say "no image registry reachable: making $image locally with mmdebstrap from $(debian_mirror)"
need_root "build a base image"
command -v mmdebstrap >/dev/null 2>&1 || { apt_quiet update; apt_quiet install -y mmdebstrap; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The mirror's sid Release may be past Valid-Until; the image keeps that setting so builds on top of it
# can run apt-get update. Images pulled from a registry are not touched by this.
mmdebstrap --quiet --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
  --include=ca-certificates \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
  sid "$work/rootfs.tar" \
  "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) sid main"
docker import "$work/rootfs.tar" "$image" >/dev/null
say "made $image locally ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
