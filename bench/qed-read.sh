#!/bin/bash
# qed reads against qemu-img convert -O raw: bench/formats-read.sh says how.
exec "$(dirname "$0")/formats-read.sh" qed "$@"
