#!/usr/bin/env bash
# The whole test suite: builds imagemount, then runs every unit and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build
swift test "$@"
