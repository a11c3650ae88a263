#!/usr/bin/env bash
# A one-node Ceph cluster for the RBD tests and bench/rbd-read.sh (DESIGN.md §5):
#
#   Tests/Scripts/ceph-cluster.sh start DIR   # prints nothing on success; DIR/ceph.conf is the client's conf
#   Tests/Scripts/ceph-cluster.sh stop DIR    # ends the daemons started in DIR (by their pid files) and removes DIR
#
# One ceph-mon, one ceph-mgr and one ceph-osd on 127.0.0.1, as root, without systemd: each has
# its data, pid file, admin socket and log under DIR, its stdio on DIR/log/*.out, and detaches
# itself (the daemons fork by default). The OSD uses memstore (objects in memory; Debian 12's
# ceph-osd has it), so nothing is left on disk and no device is needed. cephx is on, with one
# client.admin key in DIR/keyring, which DIR/ceph.conf names. A pool "rbd" (size 1, 8 PGs)
# exists and is active+clean when `start` returns. Every wait is bounded: `start` fails with
# the tail of the daemon logs instead of hanging, and leaves nothing running behind it.
#
# Ports: the monitor listens on two free ports picked in 20000-60000 (the v2 protocol, and v1,
# which a bare HOST:PORT in mon_host means); the OSD and mgr bind to ports of their own choosing
# on 127.0.0.1 (6800-7300).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1 dir=$2

stop_daemons() {
  local d=$1
  [ -d "$d/run" ] || return 0
  local pids=()
  for f in "$d"/run/*.pid; do
    [ -e "$f" ] || continue
    local pid
    pid=$(cat "$f" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  # Up to 10 s for a clean exit, then SIGKILL.
  for _ in $(seq 1 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

fail() {
  echo "ceph-cluster: $*" >&2
  for log in "$dir"/log/*.log "$dir"/log/*.out; do
    [ -s "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
  done
  stop_daemons "$dir"
  exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.2 s until it succeeds.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local tries=$((seconds * 5))
  for _ in $(seq 1 $tries); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  fail "timed out after ${seconds}s waiting for $what"
}

case $action in
stop)
  stop_daemons "$dir"
  rm -rf "$dir"
  exit 0 ;;
start) ;;
*) usage ;;
esac

for tool in ceph-mon ceph-mgr ceph-osd ceph ceph-authtool monmaptool rbd; do
  command -v $tool >/dev/null || { echo "ceph-cluster: $tool is not installed (scripts/install-deps.sh)" >&2; exit 1; }
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
mkdir -p "$dir"/{mon,mgr,osd,run,log}

# Two ports nothing listens on (ss lists listening TCP sockets): the monitor's v2 and v1.
free_port() {
  local p
  for _ in $(seq 1 20); do
    p=$((20000 + RANDOM % 40000))
    if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q . && [ "$p" != "${port:-}" ]; then echo $p; return 0; fi
  done
  return 1
}
port=$(free_port) || fail "no free port for the monitor"
port1=$(free_port) || fail "no free port for the monitor"

fsid=$(cat /proc/sys/kernel/random/uuid)
conf=$dir/ceph.conf
cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$port,v1:127.0.0.1:$port1]
mon initial members = a
public addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $dir/keyring
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
crash dir = $dir/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool delete = true
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
[mon]
mon data = $dir/mon/\$name
# Only the manager's always-on modules: the dashboard and friends cost seconds of CPU at start.
mgr initial modules =
[mgr]
mgr data = $dir/mgr/\$name
[osd]
osd data = $dir/osd/\$name
osd objectstore = memstore
# memstore's capacity (bytes held in memory, allocated as written): room for the 1 GiB bench image.
memstore device bytes = 4294967296
osd memory target = 939524096
osd scrub auto repair = false
osd scrub begin hour = 23
osd scrub end hour = 0
[client]
# The tests' clients: errors go to the caller, not to a log of their own.
log file =
admin socket =
EOF

ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
  --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port,v1:127.0.0.1:$port1]" "$dir/monmap" >/dev/null

# Each daemon: stdio on a log file of its own, no descriptor of the caller held (bash closes
# every one above 2 before exec), forking into the background once it is set up.
run_daemon() { # name, command...
  local name=$1; shift
  bash -c 'for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ "$n" -gt 2 ]; then eval "exec $n>&-" 2>/dev/null; fi; done; exec "$@"' \
    _ "$@" </dev/null >>"$dir/log/$name.out" 2>&1
}

ceph-mon --mkfs -i a -c "$conf" --monmap "$dir/monmap" --keyring "$dir/keyring" >>"$dir/log/mon.a.out" 2>&1 \
  || fail "ceph-mon --mkfs failed"
run_daemon mon.a ceph-mon -i a -c "$conf" || fail "ceph-mon did not start"

cephc() { timeout 20 ceph -c "$conf" --connect-timeout 15 "$@"; }
wait_for 30 "the monitor" cephc mon stat

# The OSD, as vstart.sh makes one: registered with its key (osd new), its store made, then
# started (it adds itself to the CRUSH map under this host on start).
osd_uuid=$(cat /proc/sys/kernel/random/uuid)
osd_key=$(ceph-authtool --gen-print-key)
printf '{"cephx_secret": "%s"}' "$osd_key" >"$dir/osd-new.json"
osd_id=$(cephc osd new "$osd_uuid" -i "$dir/osd-new.json") || fail "ceph osd new failed"
rm -f "$dir/osd-new.json"
mkdir -p "$dir/osd/osd.$osd_id"
printf '[osd.%s]\n\tkey = %s\n' "$osd_id" "$osd_key" >"$dir/osd/osd.$osd_id/keyring"
ceph-osd -i "$osd_id" -c "$conf" --mkfs --key "$osd_key" --osd-uuid "$osd_uuid" \
  >>"$dir/log/osd.$osd_id.out" 2>&1 || fail "ceph-osd --mkfs failed"
run_daemon "osd.$osd_id" ceph-osd -i "$osd_id" -c "$conf" --keyring "$dir/osd/osd.$osd_id/keyring" \
  || fail "ceph-osd did not start"

# The manager (pool statistics, `ceph -s`); nothing below waits for it.
mkdir -p "$dir/mgr/mgr.x"
cephc auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
  -o "$dir/mgr/mgr.x/keyring" >/dev/null 2>&1 || fail "ceph auth get-or-create mgr.x failed"
run_daemon mgr.x ceph-mgr -i x -c "$conf" --keyring "$dir/mgr/mgr.x/keyring" || fail "ceph-mgr did not start"

osd_up() { cephc osd dump --format=json | grep -q '"up":1'; }
wait_for 60 "osd.$osd_id to be up" osd_up

cephc osd pool create rbd 8 8 >/dev/null 2>&1 || fail "ceph osd pool create rbd failed"
cephc osd pool set rbd size 1 --yes-i-really-mean-it >/dev/null 2>&1 || true
timeout 30 rbd -c "$conf" pool init rbd || fail "rbd pool init failed"
# Every PG of the cluster (the manager may add a pool of its own) active+clean.
pgs_clean() { cephc pg stat | grep -Eq '^([0-9]+) pgs: \1 active\+clean;'; }
wait_for 60 "the pool's PGs to be active+clean" pgs_clean
