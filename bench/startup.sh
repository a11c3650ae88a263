#!/usr/bin/env bash
# Start-up cost of the helper commands, in one run, against debugfs and two floors:
#   /bin/true                         a dynamically linked C process that does nothing
#   swift hello                       print("hi"), built here with -O -static-stdlib (as imagemount)
#   debugfs -R 'cat /etc/hostname'    the anchor (ext4 partition by offset)
#   imagemount cat -m /dev/sda1       one filesystem named on the command line
#   ... --selinux                     the same through swift-argument-parser's full parse (an
#                                     option accepted and ignored, which the fast parse leaves to it)
#   imagemount cat                    inspection: finds the root among three filesystems, mounts
#                                     the guest's fstab (/boot by UUID, /data by LABEL), reads
# on the small installed-looking guest of bench/inspect.sh (GPT, three ext4 partitions).
# Prints wall time and CPU time (user + system, steadier on a loaded machine) per command,
# as hyperfine -N means over RUNS runs (default 200), and the ratio of each imagemount figure to
# debugfs's (below 1: imagemount is faster). Usage: bench/startup.sh [workdir]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/imagemount-bench-startup.XXXXXX)}
mkdir -p "$work"
RUNS=${RUNS:-200}

swift build -c release --static-swift-stdlib --product imagemount >/dev/null
bin=$(swift build -c release --show-bin-path)/imagemount

if [ ! -x "$work/hello" ]; then
  echo 'print("hi")' > "$work/hello.swift"
  swiftc -O -static-stdlib "$work/hello.swift" -o "$work/hello"
fi

img=$work/guest.img
[ -f "$img" ] || bench/make-guest.sh "$img" "$work"

# Each command must print the guest's hostname (or "hi"), or the figures mean nothing.
[ "$("$bin" cat -a "$img" -m /dev/sda1 /etc/hostname)" = bench-guest ]
[ "$("$bin" cat -a "$img" /etc/hostname)" = bench-guest ]
[ "$(debugfs -R 'cat /etc/hostname' "$img?offset=$((2048*512))" 2>/dev/null)" = bench-guest ]

hyperfine -N --style none --warmup 20 --runs "$RUNS" --export-json "$work/startup.json" \
  "/bin/true" \
  "$work/hello" \
  "debugfs -R 'cat /etc/hostname' $img?offset=$((2048*512))" \
  "$bin cat -a $img -m /dev/sda1 /etc/hostname" \
  "$bin cat -a $img -m /dev/sda1 --selinux /etc/hostname" \
  "$bin cat -a $img /etc/hostname" >/dev/null 2>&1

cat_rss=$( { /usr/bin/time -f %M "$bin" cat -a "$img" -m /dev/sda1 /etc/hostname >/dev/null; } 2>&1 | tail -1 )
python3 - "$work/startup.json" "$cat_rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
names = ["/bin/true", "swift hello (static stdlib)", "debugfs cat", "imagemount cat -m /dev/sda1",
         "  the same, full parse", "imagemount cat (inspection)"]
dbg_wall, dbg_cpu = r[2]["mean"], r[2]["user"] + r[2]["system"]
print(f"{'command':32} {'wall':>9} {'cpu':>9} {'wall/debugfs':>13} {'cpu/debugfs':>12}")
for name, x in zip(names, r):
    wall, cpu = x["mean"], x["user"] + x["system"]
    print(f"{name:32} {wall*1000:7.2f}ms {cpu*1000:7.2f}ms {wall/dbg_wall:12.2f}x {cpu/dbg_cpu:11.2f}x")
print(f"peak RSS, imagemount cat -m: {int(sys.argv[2])/1024:.1f} MiB")
PY
