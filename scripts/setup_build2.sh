#!/usr/bin/env bash
# Sets up this machine as builder build2: scripts/setup_buildN.sh build2 "$@"
# (see scripts/setup_buildN.sh --help for the options).
exec bash "$(dirname "${BASH_SOURCE[0]}")/setup_buildN.sh" build2 "$@"
