#!/usr/bin/env bash
# One entry point for people and CI: make sure the tools are there and the
# build is fresh, then run the tests. Arguments go to scripts/run-tests.mjs
# (file-name filters such as `helpers`, or node --test options such as
# --test-name-pattern=claim).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh
# The distcc 3.4 source for the pump-restore test, from Debian's source packages (cached).
bash scripts/get-distcc-source.sh "${BUILDCOORD_TEST_DISTCC_SRC:-/var/cache/buildcoord-test/distcc-src}" >/dev/null
# install-deps.sh has just built dist/: run the tests without building twice.
node scripts/run-tests.mjs "$@"
