#!/bin/sh
# The one place that knows how the Alpine and Debian flavors differ: package manager, package names,
# user names. Everything else in the image is shared, so the Debian flavor CI builds tests it all.
# Usage (at build time): DIST=alpine|debian dist.sh install TARGET
set -eu

packages() {
  case "$DIST:$1" in
    alpine:mini) echo asterisk asterisk-srtp asterisk-sounds-en openssl ;;
    alpine:base) echo python3 runit nftables py3-nftables openssl py3-aiohttp py3-cryptography ca-certificates ;;
    debian:mini) echo asterisk asterisk-core-sounds-en-gsm openssl ;;
    debian:base) echo python3 runit nftables python3-nftables openssl python3-aiohttp python3-cryptography ca-certificates ;;
    *) echo "dist.sh: no packages known for DIST=$DIST target $1" >&2; exit 2 ;;
  esac
}

install() {
  # shellcheck disable=SC2046
  case "$DIST" in
    alpine) apk add --no-cache $(packages "$1") ;;
    debian)
      apt-get update -q
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(packages "$1")
      apt-get clean
      rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log
      ;;
    *) echo "dist.sh: DIST must be alpine or debian, not '$DIST'" >&2; exit 2 ;;
  esac
  if [ "$1" = mini ]; then
    # The distro's sample configuration would mask the seeding: /etc/asterisk must start empty.
    rm -rf /etc/asterisk/* /var/log/asterisk/* /var/spool/asterisk/*/*
  fi
}

: "${DIST:?set DIST to alpine or debian}"
case "${1:-}" in
  install) install "${2:?target}" ;;
  packages) packages "${2:?target}" ;;
  *) echo "usage: DIST=alpine|debian dist.sh install|packages TARGET" >&2; exit 2 ;;
esac
