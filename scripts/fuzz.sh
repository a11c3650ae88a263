#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, a package of its own) and runs one or all of them for a
# bounded time. fuzz/README.md lists the targets.
#   scripts/fuzz.sh TARGET|all [SECONDS]     (default 60 s per target)
# Corpora: fuzz/corpus/TARGET (committed seeds), fuzz/corpus-generated/TARGET (scripts/fuzz-seeds.sh,
# when present) and fuzz/corpus-run/TARGET (what runs found; not committed). A crashing, hanging or
# memory-hungry input is written to fuzz/crashers/TARGET/ (crash-*, timeout-*, oom-*): commit it with
# the fix; Tests/GuestFSTests/FuzzCrasherReplayTests.swift replays that folder.
# Prints one line per target with the executions libFuzzer reports; exits 1 if any target failed.
# Environment: FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT (seconds per input, default 10),
# FUZZ_FLAGS (more libFuzzer flags), FUZZ_JOBS (targets run at once, default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
targets=(format-probe qcow2 vpc vdi vhdx vmdk qcow qed parallels partitions lvm lvm-metadata luks luks2-json volume-probe ext journal vfat iso9660 xfs xfs-log ntfs hive rbd-name nbd-block-status)
target=${1:?usage: scripts/fuzz.sh TARGET|all [SECONDS]  (targets: ${targets[*]})}
seconds=${2:-60}
if [ "$target" = all ]; then selected=("${targets[@]}")
elif [[ " ${targets[*]} " == *" $target "* ]]; then selected=("$target")
else echo "fuzz.sh: unknown target '$target' (targets: ${targets[*]})" >&2; exit 2; fi

# Swift code with coverage instrumentation and ASan; the C shims (CExt2fs) too. -enable-testing:
# the harnesses reach a few internal entry points (@testable import GuestFS).
echo "fuzz.sh: building fuzz targets" >&2
(cd fuzz && swift build -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing \
    -Xcc -fsanitize=fuzzer-no-link,address 2>&1 | grep -v "Cannot export local symbol" >&2) || true
bin=$(cd fuzz && swift build -c debug --show-bin-path)
for t in "${selected[@]}"; do
    [ -x "$bin/fuzz-$t" ] || { echo "fuzz.sh: fuzz-$t did not build" >&2; exit 1; }
done

# The Swift runtime's crash backtracer would wait on libFuzzer's deadly-signal handler; ASan's
# report is the one we want. Leak checking is off: the Swift runtime's caches look like leaks.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1:malloc_context_size=0}
# One target's run; writes "EXECS STATUS" to $results/TARGET (and the failure's lines to stderr).
results=$(mktemp -d /tmp/imagemount-fuzz-results.XXXXXX)
trap 'rm -rf "$results"' EXIT
run_target() {
    local t=$1 run="fuzz/corpus-run/$1" status=ok execs log
    mkdir -p "$run" "fuzz/crashers/$t"
    local corpora=("$run")
    for dir in "fuzz/corpus/$t" "fuzz/corpus-generated/$t"; do [ -d "$dir" ] && corpora+=("$dir"); done
    log=$(mktemp /tmp/imagemount-fuzz-$t.XXXXXX)
    # shellcheck disable=SC2086
    "$bin/fuzz-$t" "${corpora[@]}" -max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
        -malloc_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}" \
        -print_final_stats=1 -artifact_prefix="$root/fuzz/crashers/$t/" ${FUZZ_FLAGS:-} >"$log" 2>&1 || status=FAILED
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$status" != ok ]; then
        grep -E "ERROR|SUMMARY|Fatal error|Test unit written|#[0-9]+ 0x" "$log" | head -30 >&2 || true
    fi
    rm -f "$log"
    echo "${execs:-0} $status" > "$results/$t"
}

# FUZZ_JOBS targets at a time (default: one per CPU), each single-threaded as libFuzzer runs by
# default, so `all` takes about (targets / CPUs) x SECONDS.
jobs=${FUZZ_JOBS:-$(nproc)}
for t in "${selected[@]}"; do
    while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
    run_target "$t" &
done
wait
failed=0 total=0
for t in "${selected[@]}"; do
    read -r execs status < "$results/$t" || { execs=0; status=FAILED; }
    total=$((total + execs))
    [ "$status" = ok ] || failed=1
    printf '%-14s %12s execs  %s\n' "$t" "$execs" "$status"
done
printf '%-14s %12s execs in %s s per target, %s at a time\n' total "$total" "$seconds" "$jobs"
exit $failed
