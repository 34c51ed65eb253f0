#!/usr/bin/env bash
# `make test`: everything the tests need on a fresh Debian machine, then the whole suite.
# Unit tests run in seconds without Docker; image tests build the Debian-flavor images once per run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
root=$(dirname "$here")
cd "$root"

"$here/ensure-docker.sh"
python=${PYTHON:-python3}
if ! "$python" -c 'import pytest, aiohttp, aiosmtpd' 2>/dev/null || ! "$python" -m ruff --version >/dev/null 2>&1; then
  say "installing the test tools (pip, requirements-test.txt)"
  "$python" -m pip install -q -r requirements-test.txt
fi
say "lint: ruff"
"$python" -m ruff check . && "$python" -m ruff format --check .
"$here/images.sh"
export PBX_TEST_IMAGE_MINI=pbx-test:mini-debian PBX_TEST_IMAGE_BASE=pbx-test:base-debian
# Plugins the machine may have installed but the project does not use stay out of the run.
exec "$python" -m pytest -p no:cacheprovider -p no:hypothesispytest -p no:benchmark "${@:-tests}"
