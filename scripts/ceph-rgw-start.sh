#!/usr/bin/env bash
# ceph-rgw-start.sh WORKDIR PORT
#
# Starts a throw-away single-node Ceph cluster (1 mon, 1 OSD, 1 radosgw; no mgr,
# no systemd, no containers) whose state lives entirely under WORKDIR, with the
# S3 endpoint on http://127.0.0.1:PORT: central storage for the tests
# (tests/s3server.py), `make demo STORAGE=s3` and bench/central_sync.py.
# Needs Debian's packages ceph-mon ceph-osd radosgw (scripts/install-system.sh,
# which `make test` runs).  Ceph 16's S3 quirks (Content-MD5 is checked; no
# flexible checksums) are described in edge_server/storage.py.
# On success prints (stdout, shell-sourceable; also written to WORKDIR/s3.env):
#     S3_ENDPOINT=http://127.0.0.1:PORT
#     S3_ACCESS_KEY=...
#     S3_SECRET_KEY=...
#     S3_REGION=us-east-1
# Progress and errors go to stderr.  Exit status is non-zero on any failure,
# in which case the daemons it started are stopped again (logs stay in WORKDIR/log).
#
# Optional environment:
#   S3_ACCESS_KEY / S3_SECRET_KEY  keys to create (default: random)
#   CEPH_OBJECTSTORE   memstore (default: data in the OSD's RAM) | bluestore (sparse file WORKDIR/osd/ceph-0/block, CEPH_STORE_BYTES big)
#   CEPH_STORE_BYTES   capacity of the OSD (default 4 GiB; memstore only uses RAM for what is stored)
#   CEPH_MON_PORT      mon port (default: a free ephemeral port)
#   CEPH_START_TIMEOUT seconds allowed for each wait (default 120)
#
# Stop with ceph-rgw-stop.sh WORKDIR.  Running this script again on the same
# WORKDIR first stops the old cluster there and wipes it (start from scratch).
set -euo pipefail

die() { echo "ceph-rgw-start: ERROR: $*" >&2; exit 1; }
log() { echo "ceph-rgw-start: [$(date +%T)] $*" >&2; }

[ $# -eq 2 ] || die "usage: $0 WORKDIR PORT"
W=$1; PORT=$2
[[ $PORT =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "PORT must be a number 1-65535, got '$PORT'"
TIMEOUT=${CEPH_START_TIMEOUT:-120}
STORE=${CEPH_OBJECTSTORE:-memstore}
STORE_BYTES=${CEPH_STORE_BYTES:-4294967296}
case $STORE in memstore|bluestore) ;; *) die "CEPH_OBJECTSTORE must be memstore or bluestore, got '$STORE'";; esac
unset CEPH_ARGS CEPH_CONF CEPH_KEYRING 2>/dev/null || true

for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph python3 uuidgen timeout awk; do
  command -v "$b" >/dev/null 2>&1 || die "'$b' not found. Install: scripts/install-system.sh (as root; make test runs it), or apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw"
done

mkdir -p "$W" || die "cannot create $W"
W=$(cd "$W" && pwd -P)
MARK="$W/.ceph-rgw-test"
CONF="$W/ceph.conf"

# ---- stop and wipe an earlier cluster of ours in WORKDIR (idempotent restart) ----
alive() {  # the PIDs that still run (an exited process can stay a zombie for ~2 s here until PID 1 reaps it)
  local p a b st
  for p in "$@"; do
    read -r a b st _ <"/proc/$p/stat" 2>/dev/null || continue
    [ "$st" = Z ] || echo "$p"
  done
  return 0
}
our_pids() {  # "PID NAME" of ceph-mon/ceph-osd/radosgw processes started with -c WORKDIR/ceph.conf
  local d pid comm cmd
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    read -r comm <"$d/comm" 2>/dev/null || continue
    case $comm in ceph-mon|ceph-osd|radosgw) ;; *) continue;; esac
    cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
    case $cmd in *"-c $CONF "*) echo "$pid $comm";; esac
  done
  return 0
}
term_wait() {  # term_wait TENTHS PID... : SIGTERM, wait up to TENTHS/10 s
  local n=$1 i; shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for i in $(seq 1 "$n"); do [ -z "$(alive "$@")" ] && return 0; sleep 0.1; done
  return 0
}
stop_ours() {  # radosgw, then the OSD, then the mon (each needs the next to shut down quickly); SIGKILL leftovers
  local all left i
  all=$(our_pids)
  [ -n "$all" ] || return 0
  echo "${0##*/}: stopping $(echo "$all" | tr '\n' ' ')" >&2
  term_wait 50 $(echo "$all" | awk '$2 == "radosgw" {print $1}')
  term_wait 50 $(echo "$all" | awk '$2 == "ceph-osd" {print $1}')
  term_wait 50 $(echo "$all" | awk '$2 == "ceph-mon" {print $1}')
  left=$(alive $(echo "$all" | awk '{print $1}'))
  if [ -n "$left" ]; then
    echo "${0##*/}: still running, SIGKILL: $(echo $left)" >&2
    kill -KILL $left 2>/dev/null || true
    for i in $(seq 1 50); do [ -z "$(alive $left)" ] && break; sleep 0.1; done
  fi
  return 0
}
if [ -e "$MARK" ]; then
  log "earlier cluster found in $W: stopping it and wiping its data"
  stop_ours
  find "$W" -mindepth 1 -delete
elif [ -n "$(ls -A "$W")" ]; then
  die "$W is not empty and was not made by this script; give an empty or new directory"
fi
touch "$MARK"
mkdir -p "$W"/{mon/ceph-a,osd/ceph-0,run,log,rgw,crash,tmp}

STARTED=0
on_exit() {
  local rc=$?
  if [ $rc -ne 0 ] && [ $STARTED -eq 1 ]; then
    echo "ceph-rgw-start: startup failed (rc=$rc); last log lines:" >&2
    for f in "$W"/log/ceph-mon.a.log "$W"/log/ceph-osd.0.log "$W"/log/ceph-client.rgw.s3.log; do
      [ -f "$f" ] && { echo "---- $f" >&2; tail -n 8 "$f" >&2; }
    done
    echo "ceph-rgw-start: stopping the daemons it started" >&2
    stop_ours
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

port_busy() { python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}
port_busy "$PORT" && die "port $PORT on 127.0.0.1 is already in use"
if [ -n "${CEPH_MON_PORT:-}" ]; then
  MONPORT=$CEPH_MON_PORT
  port_busy "$MONPORT" && die "CEPH_MON_PORT $MONPORT is already in use"
else
  MONPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
# the OSD binds ports in [ms_bind_port_min, ms_bind_port_max] (default 6800-7300); keep PORT and MONPORT out of it
for range in "6800 7300" "20000 20499" "51000 51499"; do
  read -r BMIN BMAX <<<"$range"
  { [ "$PORT" -lt "$BMIN" ] || [ "$PORT" -gt "$BMAX" ]; } && { [ "$MONPORT" -lt "$BMIN" ] || [ "$MONPORT" -gt "$BMAX" ]; } && break
done

AK=${S3_ACCESS_KEY:-$(uuidgen | tr -d - | tr a-z A-Z | cut -c1-20)}
SK=${S3_SECRET_KEY:-$(uuidgen | tr -d -)$(uuidgen | tr -d - | cut -c1-8)}
FSID=$(uuidgen)

if [ "$STORE" = memstore ]; then
  STORE_CONF="osd objectstore = memstore
memstore device bytes = $STORE_BYTES"
else
  STORE_CONF="osd objectstore = bluestore
bluestore block create = true
bluestore block size = $STORE_BYTES
bluestore fsck on mkfs = false
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 134217728"
fi

cat >"$CONF" <<EOF
# generated by ceph-rgw-start.sh; throw-away test cluster
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MONPORT
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind port min = $BMIN
ms bind port max = $BMAX
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
run dir = $W/run
admin socket = $W/run/\$cluster-\$name.asok
pid file = $W/run/\$cluster-\$name.pid
log file = $W/log/\$cluster-\$name.log
mon cluster log file = $W/log/\$cluster.\$channel.log
crash dir = $W/crash
keyring = $W/keyring
tmp dir = $W/tmp
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1
# each osdmap change (pool create, app enable, osd boot) otherwise waits ~1 s
paxos propose interval = 0.05
paxos min wait = 0.01
client mount timeout = 30
rados mon op timeout = 60
[mon]
mon data = $W/mon/ceph-\$id
[osd]
osd data = $W/osd/ceph-\$id
$STORE_CONF
osd memory target = 939524096
osd op num shards = 2
osd op num threads per shard = 1
[client]
# radosgw itself defaults to ms_mon_client_mode=secure, which cannot work with auth=none
ms mon client mode = crc secure
[client.rgw.s3]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $W/rgw
rgw init timeout = 90
rgw thread pool size = 64
# reclaim the data of deleted/overwritten objects after ~1 min instead of 2 h (memstore keeps it in RAM)
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF

c() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }
wait_for() {  # wait_for WHAT DAEMON CMD... : poll CMD until it succeeds; fail at once if DAEMON died, or after TIMEOUT s
  local what=$1 daemon=$2 end=$((SECONDS + TIMEOUT)); shift 2
  while [ $SECONDS -lt $end ]; do
    "$@" >/dev/null 2>&1 && return 0
    case " $(our_pids | tr '\n' ' ') " in *" $daemon "*) ;; *) die "$daemon exited while waiting for $what (see $W/log/)";; esac
    sleep 0.25
  done
  die "timed out after ${TIMEOUT}s waiting for $what"
}

T0=$(date +%s.%N)
log "workdir $W, mon 127.0.0.1:$MONPORT, rgw 127.0.0.1:$PORT, objectstore $STORE"
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MONPORT]" "$W/monmap" >"$W/log/setup.log" 2>&1 \
  || die "monmaptool failed: $(tail -3 "$W/log/setup.log")"
ceph-mon -c "$CONF" --mkfs -i a --monmap "$W/monmap" >>"$W/log/setup.log" 2>&1 \
  || die "ceph-mon --mkfs failed: $(tail -3 "$W/log/setup.log")"
STARTED=1
ceph-mon -c "$CONF" -i a >"$W/log/start-mon.out" 2>&1 || die "ceph-mon failed to start: $(tail -3 "$W/log/start-mon.out")"
wait_for "the monitor" ceph-mon c mon stat
log "mon up"

OSD_UUID=$(uuidgen)
OSD_ID=$(c osd new "$OSD_UUID" 2>>"$W/log/setup.log") || die "'ceph osd new' failed: $(tail -3 "$W/log/setup.log")"
[ "$OSD_ID" = 0 ] || die "unexpected osd id '$OSD_ID'"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >>"$W/log/setup.log" 2>&1 \
  || die "ceph-osd --mkfs failed: $(tail -5 "$W/log/setup.log")"
ceph-osd -c "$CONF" -i 0 >"$W/log/start-osd.out" 2>&1 || die "ceph-osd failed to start: $(tail -5 "$W/log/start-osd.out")"
osd_up() { c osd stat -f json | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["num_up_osds"] >= 1 else 1)'; }
wait_for "the OSD to come up" ceph-osd osd_up
log "osd up"

radosgw -c "$CONF" -n client.rgw.s3 >"$W/log/start-rgw.out" 2>&1 || die "radosgw failed to start: $(tail -5 "$W/log/start-rgw.out")"
rgw_http() { python3 - "$PORT" <<'EOF'
import sys, urllib.request
r = urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=5)
sys.exit(0 if r.status == 200 and b"ListAllMyBucketsResult" in r.read() else 1)
EOF
}
wait_for "radosgw to answer HTTP on 127.0.0.1:$PORT" radosgw rgw_http
log "radosgw up"

if ! timeout 60 radosgw-admin -c "$CONF" user info --uid=test >/dev/null 2>&1; then
  timeout 60 radosgw-admin -c "$CONF" user create --uid=test --display-name=test \
      --access-key="$AK" --secret="$SK" >"$W/log/user-create.out" 2>&1 \
    || die "radosgw-admin user create failed: $(tail -5 "$W/log/user-create.out")"
fi

# End-to-end probe with an S3 (SigV2) client using only the python stdlib:
# create bucket, put, get, delete.  Also makes RGW create its data pools now.
timeout "$TIMEOUT" python3 - "$PORT" "$AK" "$SK" >"$W/log/probe.out" 2>&1 <<'EOF' || die "S3 probe (create bucket / put / get / delete) failed: $(tail -5 "$W/log/probe.out")"
import base64, hashlib, hmac, http.client, sys, time, uuid
from email.utils import formatdate
port, ak, sk = sys.argv[1], sys.argv[2], sys.argv[3]
def req(method, path, body=b""):
    date = formatdate(usegmt=True)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode() if body else ""
    sts = "%s\n%s\n%s\n%s\n%s" % (method, md5, "", date, path)
    sig = base64.b64encode(hmac.new(sk.encode(), sts.encode(), hashlib.sha1).digest()).decode()
    h = {"Date": date, "Authorization": "AWS %s:%s" % (ak, sig), "Content-Length": str(len(body))}
    if md5: h["Content-MD5"] = md5
    for attempt in range(60):
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse(); data = r.read(); c.close()
        if r.status < 500: break
        time.sleep(0.5)
    if r.status >= 300:
        raise SystemExit("%s %s -> %s %s" % (method, path, r.status, data[:300]))
    return data
b = "/startup-probe-" + uuid.uuid4().hex[:8]
payload = b"probe " * 1000
req("PUT", b)
req("PUT", b + "/obj", payload)
assert req("GET", b + "/obj") == payload, "GET returned different bytes"
req("DELETE", b + "/obj")
req("DELETE", b)
print("probe ok")
EOF

T1=$(date +%s.%N)
log "S3 endpoint ready in $(python3 -c "print('%.1f' % ($T1 - $T0))")s (pids: $(cat "$W"/run/*.pid | tr '\n' ' '))"
cat >"$W/s3.env" <<EOF
S3_ENDPOINT=http://127.0.0.1:$PORT
S3_ACCESS_KEY=$AK
S3_SECRET_KEY=$SK
S3_REGION=us-east-1
EOF
cat "$W/s3.env"
