#!/usr/bin/env bash
# Build the images tests and benchmarks share, once: pbx-test:{mini,base}-debian and the test peers'.
# Build output is long: it goes to /tmp/pbx-build-*.log, and only a failure's tail is shown.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
"$here/bootstrap-base.sh" debian:sid
for target in mini base; do
  say "building pbx-test:$target-debian"
  PROGRESS=plain "$here/build.sh" "$target" debian pbx-test >"/tmp/pbx-build-$target.log" 2>&1 ||
    { tail -50 "/tmp/pbx-build-$target.log"; die "building $target failed"; }
done
"$here/peer-image.sh" pbx-test-peer:latest >/tmp/pbx-build-peer.log 2>&1 ||
  { tail -50 /tmp/pbx-build-peer.log; die "building the test peers' image failed"; }
