#!/usr/bin/env bash
# The whole test suite: layering checks, a build, then every unit and end-to-end test, then a
# short run of every fuzz target (FUZZ_SECONDS per target, default 5; 0 skips it).
# Needs root (the FUSE and loop-mount tests mount for real) and the packages of install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/check-layers.sh
swift build
swift test "$@"
if [ "${FUZZ_SECONDS:-5}" != 0 ]; then
    ./scripts/fuzz.sh all "${FUZZ_SECONDS:-5}"
fi
