#!/usr/bin/env bash
# One entry point for people and CI: make sure the tools are there and the
# build is fresh, then run the tests. Arguments go to scripts/run-tests.mjs
# (file-name filters such as `helpers`, or node --test options such as
# --test-name-pattern=claim).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh && npm test -- "$@"
