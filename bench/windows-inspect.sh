#!/bin/bash
# Windows inspection, imagemount against the tools that do the same job by hand, in one run:
#   cat      `imagemount cat -a DISK 'C:\Windows\win.ini'`: inspection (find \Windows, read the
#            SOFTWARE and SYSTEM hives through hivex, map the drive letters) and then the file;
#   inspect  `imagemount inspect -a DISK` (XML out).
# The anchor is the same work with the stock tools on a loop device of the C: partition (set up
# before timing, as imagemount's opening of the disk image is inside its time): `ntfscat` of
# each hive it needs to a temporary file and `hivexget` of the values read. For `cat` that is
# what imagemount's cat reads (SYSTEM's MountedDevices for the letter, then `ntfscat` of the
# file; virt-cat would read SOFTWARE as well); for `inspect`, both hives (ProductName,
# InstallationType, CurrentBuildNumber, the version numbers, Select\Current, the control set's
# ComputerName, MountedDevices). virt-cat/virt-inspector
# themselves boot an appliance (25–90 s here under TCG), which says nothing about the parsing.
# The hives are made with hivexregedit; SOFTWARE gets --keys extra keys (an Uninstall entry
# each, as installed programs leave) and SYSTEM --system-keys service keys, so that neither is
# a toy (defaults 3000 and 300; hivexregedit's appends make that about 40 MiB and a few MiB,
# the order of a real Windows 10 SOFTWARE and SYSTEM hive).
# Prints the mean wall time of --runs runs of each (default 30), the ratio (anchor / ours:
# above 1 means imagemount is faster) and the peak RSS (the largest of the anchor's processes).
#
# usage: bench/windows-inspect.sh [--runs N] [--keys N] [--system-keys N]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=30
KEYS=3000
SYSTEM_KEYS=300
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --keys) KEYS=$2; shift 2 ;;
        --system-keys) SYSTEM_KEYS=$2; shift 2 ;;
        *) echo "windows-inspect.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
for tool in hivexregedit hivexget ntfscat mkntfs ntfs-3g sfdisk losetup; do
    command -v $tool >/dev/null || { echo "windows-inspect.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

swift build -c release --product imagemount >/dev/null
BIN=$(swift build -c release --show-bin-path)/imagemount

WORK=$(mktemp -d /tmp/imagemount-bench-win.XXXXXX)
LOOP=""
cleanup() {
    fusermount3 -u -z "$WORK/mnt" 2>/dev/null || true
    [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# A minimal hive (regf header + one hbin with a root key and its sk record), as
# Tests/TestSupport/WindowsImages.swift writes it, for hivexregedit --merge to build on.
python3 - <<'PY'
import struct
page = bytearray(4096); page[0:4] = b'hbin'; struct.pack_into('<I', page, 8, 4096)
nk, sk = 0x20, 0x20 + 88
struct.pack_into('<i2sH', page, nk, -88, b'nk', 0x2C)
for f in (0x14, 0x20, 0x24, 0x2C, 0x34): struct.pack_into('<I', page, nk + f, 0xFFFFFFFF)
struct.pack_into('<I', page, nk + 0x30, sk); struct.pack_into('<H', page, nk + 0x4C, 4); page[nk + 0x50:nk + 0x54] = b'ROOT'
struct.pack_into('<i2sHIIII', page, sk, -48, b'sk', 0, sk, sk, 1, 20); struct.pack_into('<BBH', page, sk + 24, 1, 0, 0x8004)
struct.pack_into('<i', page, sk + 48, 4096 - (sk + 48))
h = bytearray(4096); h[0:4] = b'regf'
for off, v in ((4, 1), (8, 1), (0x14, 1), (0x18, 3), (0x20, 1), (0x24, 0x20), (0x28, 4096), (0x2C, 1)): struct.pack_into('<I', h, off, v)
cs = 0
for i in range(0, 0x1FC, 4): cs ^= struct.unpack_from('<I', h, i)[0]
struct.pack_into('<I', h, 0x1FC, cs)
open('min.hive', 'wb').write(bytes(h + page))
PY
{
    printf 'Windows Registry Editor Version 5.00\n\n'
    for k in 'Microsoft' 'Microsoft\Windows NT' 'Microsoft\Windows' 'Microsoft\Windows\CurrentVersion' 'Microsoft\Windows\CurrentVersion\Uninstall'; do
        printf '[HKEY_LOCAL_MACHINE\\SOFTWARE\\%s]\n\n' "$k"
    done
    printf '[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion]\n"ProductName"="Windows 10 Pro"\n"InstallationType"="Client"\n"EditionID"="Professional"\n"CurrentBuildNumber"="19045"\n"CurrentMajorVersionNumber"=dword:0000000a\n"CurrentMinorVersionNumber"=dword:00000000\n\n'
    for ((i = 0; i < KEYS; i++)); do
        printf '[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{%08d-1111-2222-3333-444444444444}]\n"DisplayName"="Application number %d"\n"Publisher"="Somebody"\n"DisplayVersion"="1.%d"\n"InstallLocation"="C:\\\\Program Files\\\\App%d"\n\n' $i $i $i $i
    done
} > software.reg
cat > system.reg <<'EOF'
Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\SYSTEM\Select]
"Current"=dword:00000001

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\ComputerName]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\ComputerName\ComputerName]
"ComputerName"="WIN-BENCH"

[HKEY_LOCAL_MACHINE\SYSTEM\MountedDevices]
"\\DosDevices\\C:"=hex:78,56,34,12,00,00,10,00,00,00,00,00
EOF
printf '\n[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services]\n\n' >> system.reg
for ((i = 0; i < SYSTEM_KEYS; i++)); do
    printf '[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\Service%d]\n"ImagePath"="\\\\SystemRoot\\\\System32\\\\drivers\\\\svc%d.sys"\n"Start"=dword:00000003\n"Type"=dword:00000001\n\n' $i $i >> system.reg
done
cp min.hive SOFTWARE && hivexregedit --merge SOFTWARE --prefix 'HKEY_LOCAL_MACHINE\SOFTWARE' software.reg
cp min.hive SYSTEM && hivexregedit --merge SYSTEM --prefix 'HKEY_LOCAL_MACHINE\SYSTEM' system.reg

truncate -s 64M c.img
mkntfs -F -Q -q -L Windows c.img >/dev/null 2>&1
mkdir mnt
ntfs-3g -o no_detach c.img mnt </dev/null >/dev/null 2>&1 & filler=$!
for _ in $(seq 1 100); do mountpoint -q mnt && break; sleep 0.1; done
mkdir -p mnt/Windows/System32/config mnt/Users/x/Desktop
cp SOFTWARE SYSTEM mnt/Windows/System32/config/
{ printf 'MZ'; head -c 58 /dev/zero; printf '\200\000\000\000'; head -c 64 /dev/zero; printf 'PE\000\000\144\206'; head -c 250 /dev/zero; } > mnt/Windows/System32/cmd.exe
printf '; for 16-bit app support\r\n[fonts]\r\n' > mnt/Windows/win.ini
fusermount3 -u mnt; wait $filler
truncate -s 72M disk.img
printf 'label: dos\nlabel-id: 0x12345678\nstart=2048, size=131072, type=7\n' | sfdisk -q --no-reread --no-tell-kernel disk.img
dd if=c.img of=disk.img bs=1M seek=1 conv=notrunc,sparse status=none
qemu-img convert -O qcow2 disk.img disk.qcow2
LOOP=$(losetup -f --show -r -o $((1 << 20)) --sizelimit $((64 << 20)) disk.img)
cat disk.img disk.qcow2 >/dev/null

# The anchor's work (inspection by hand, then optionally the file).
# For `cat` it does what imagemount's cat does (the drive letters from SYSTEM, then the file);
# for `inspect` everything inspection reads.
anchor() {
    ntfscat "$LOOP" /Windows/System32/config/SYSTEM > sys.hive
    hivexget sys.hive '\MountedDevices' >/dev/null
    if [ "$1" = cat ]; then ntfscat "$LOOP" /Windows/win.ini; return; fi
    ntfscat "$LOOP" /Windows/System32/config/SOFTWARE > sw.hive
    for v in ProductName InstallationType CurrentBuildNumber CurrentMajorVersionNumber CurrentMinorVersionNumber; do
        hivexget sw.hive '\Microsoft\Windows NT\CurrentVersion' $v >/dev/null
    done
    hivexget sys.hive '\Select' Current >/dev/null
    hivexget sys.hive '\ControlSet001\Control\ComputerName\ComputerName' ComputerName >/dev/null
}
# measure NAME COMMAND...: mean ms of $RUNS runs, then the peak RSS in KiB of one more run
# (for the anchor, the largest of its processes: each piece runs under /usr/bin/time).
measure() {
    local start end
    start=$(date +%s%N)
    for ((r = 0; r < RUNS; r++)); do "$@" >/dev/null 2>&1; done
    end=$(date +%s%N)
    local ms=$(echo "($end - $start) / $RUNS / 1000000" | bc -l)
    local rss
    if [ "$1" = anchor ]; then
        rss=0
        for piece in "ntfscat $LOOP /Windows/System32/config/SOFTWARE" "hivexget sw.hive '\\Microsoft\\Windows NT\\CurrentVersion' ProductName" "ntfscat $LOOP /Windows/win.ini"; do
            local k=$( { /usr/bin/time -f %M bash -c "$piece" >/dev/null; } 2>&1 | tail -1)
            [ "$k" -gt "$rss" ] && rss=$k
        done
    else
        rss=$( { /usr/bin/time -f %M "$@" >/dev/null; } 2>&1 | tail -1)
    fi
    echo "$ms $rss"
}

[ "$("$BIN" cat -a disk.img 'C:\Windows\win.ini')" = "$(ntfscat "$LOOP" /Windows/win.ini)" ] || { echo "windows-inspect.sh: outputs differ" >&2; exit 1; }
"$BIN" inspect -a disk.img | grep -q '<product_name>Windows 10 Pro</product_name>' || { echo "windows-inspect.sh: inspect failed" >&2; exit 1; }

echo "SOFTWARE hive: $(stat -c %s SOFTWARE) bytes ($KEYS extra keys), SYSTEM: $(stat -c %s SYSTEM) bytes; $RUNS runs each"
printf '%-26s %12s %14s %7s %12s %14s\n' test "anchor ms" "imagemount ms" ratio "anchor RSS" "imagemount RSS"
row() { # NAME ANCHOR-ARG IMAGE IMAGEMOUNT-ARGS...
    local name=$1 what=$2 image=$3; shift 3
    read -r theirs theirs_rss < <(measure anchor "$what")
    read -r ours ours_rss < <(measure "$BIN" "$@")
    printf '%-26s %12.1f %14.1f %7.2f %8s KiB %10s KiB\n' "$name" "$theirs" "$ours" "$(echo "$theirs / $ours" | bc -l)" "$theirs_rss" "$ours_rss"
}
row "cat C:\\Windows\\win.ini raw" cat disk.img cat -a disk.img 'C:\Windows\win.ini'
row "cat C:\\Windows\\win.ini qcow2" cat disk.qcow2 cat -a disk.qcow2 'C:\Windows\win.ini'
row "inspect raw" inspect disk.img inspect -a disk.img
row "inspect qcow2" inspect disk.qcow2 inspect -a disk.qcow2
