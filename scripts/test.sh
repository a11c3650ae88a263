#!/usr/bin/env bash
# The whole test suite: layering checks, a build, then every unit and end-to-end test.
# Needs root (the FUSE and loop-mount tests mount for real) and the packages of install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/check-layers.sh
swift build
swift test "$@"
