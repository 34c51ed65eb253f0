#!/usr/bin/env bash
# `make up`: build the demo image if needed, start the demo PBX, wait until it is healthy, and show how to
# register a softphone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
root=$(dirname "$here")
compose=(docker compose -f "$root/demo/docker-compose.yml")

"$here/ensure-docker.sh"
image=$(ALLOW_FALLBACK=1 "$here/build.sh" "${TARGET:-base}" "${DIST:-alpine}" "${IMAGE:-pbx}")
export PBX_IMAGE=$image
say "starting the demo PBX ($image)"
"${compose[@]}" up -d
id=$("${compose[@]}" ps -q tele)
for _ in $(seq 1 90); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$id")
  [ "$status" = healthy ] && break
  sleep 2
done
[ "$status" = healthy ] || die "the PBX did not turn healthy; see: make logs"
ip=$(hostname -I 2>/dev/null | awk '{print $1}')
say "the PBX is healthy. Register a softphone to ${ip:-this host}:${SIP_PORT:-5060} (UDP or TCP) as:"
if ! docker logs "$id" 2>&1 | grep -E '^pbx: +pjsip_endpoint\.conf \[[^]]+\] inbound_auth/password = '; then
  echo "  (passwords were printed when this volume was first seeded; they are in /etc/asterisk/pjsip_endpoint.conf:"
  echo "   make cli, or: docker compose -f demo/docker-compose.yml exec tele cat /etc/asterisk/pjsip_endpoint.conf)"
fi
echo "Asterisk console: make cli    logs: make logs    remove everything: make destroy"
