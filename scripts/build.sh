#!/usr/bin/env bash
# Build one target of one flavor and tag it by the README's scheme.
# Usage: build.sh TARGET DIST [IMAGE]      e.g. build.sh base debian pbx
# DIST=alpine falls back to debian (and says so) when the Alpine base image cannot be pulled and
# ALLOW_FALLBACK=1; the Debian base is made locally when no registry answers (scripts/bootstrap-base.sh).
# Prints the first tag on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
target=${1:?target: mini or base}
dist=${2:-alpine}
image=${3:-pbx}
root=$(dirname "$here")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml")
alpine_version=$(sed -n 's/^ARG ALPINE_VERSION=//p' "$root/Dockerfile")

case "$target" in mini | base) ;; *) die "TARGET must be mini or base, not '$target'" ;; esac
case "$dist" in
  alpine)
    if ! docker image inspect "alpine:$alpine_version" >/dev/null 2>&1 &&
      ! docker pull -q "alpine:$alpine_version" >/dev/null 2>&1; then
      [ "${ALLOW_FALLBACK:-0}" = 1 ] || die "cannot pull alpine:$alpine_version (no image registry reachable?); try DIST=debian"
      say "alpine:$alpine_version cannot be pulled here: falling back to the Debian flavor (DIST=debian)"
      dist=debian
    fi
    ;;
  debian) ;;
  *) die "DIST must be alpine or debian, not '$dist'" ;;
esac
[ "$dist" = debian ] && "$here/bootstrap-base.sh" debian:sid

# Tags: <target>, <target>-X.Y.Z, <target>-X.Y, <target>-X; the newest target also gets latest, X.Y.Z,
# X.Y and X. The Debian flavor carries the same tags with a -debian suffix.
suffix=""
[ "$dist" = debian ] && suffix="-debian"
latest_target=base
tags=("$target" "$target-$version" "$target-${version%.*}" "$target-${version%%.*}")
[ "$target" = "$latest_target" ] && tags+=(latest "$version" "${version%.*}" "${version%%.*}")
args=()
for tag in "${tags[@]}"; do args+=(-t "$image:$tag$suffix"); done

say "building $image:$target$suffix (DIST=$dist)"
docker buildx build --network host --progress "${PROGRESS:-auto}" --target "$target" \
  --build-arg "DIST=$dist" "${args[@]}" "$root" >&2
echo "$image:$target$suffix"
