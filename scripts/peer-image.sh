#!/usr/bin/env bash
# Build the test peers' image (tests/peer): sipp, baresip, sipvicious, aiohttp, aiosmtpd on Debian sid.
# Usage: peer-image.sh [IMAGE]   (default pbx-test-peer:latest). Builds only when missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
image=${1:-pbx-test-peer:latest}
docker image inspect "$image" >/dev/null 2>&1 && exit 0
"$here/bootstrap-base.sh" debian:sid
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/../tests/peer/Dockerfile" "$ctx/"
mkdir "$ctx/wheels"
python3 -m pip download -q --no-deps -d "$ctx/wheels" sipvicious==0.3.8
say "building the test peers' image $image"
docker buildx build --network host --progress "${PROGRESS:-auto}" -t "$image" "$ctx" >&2
