#!/usr/bin/env bash
# Regenerates man/ from the commands' help text (swift-argument-parser's generate-manual plugin).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
swift package --allow-writing-to-directory "$out" generate-manual --multi-page --output-directory "$out" \
  --authors "the imagemount developers" >/dev/null
rm -rf man && mkdir man
find "$out" -name '*.1' -exec cp {} man/ \;
rm -rf "$out"
ls man
