#!/usr/bin/env bash
# ceph-rgw-stop.sh WORKDIR [--keep]
#
# Stops the cluster that ceph-rgw-start.sh started in WORKDIR (only processes
# named ceph-mon / ceph-osd / radosgw whose command line has "-c WORKDIR/ceph.conf"),
# SIGTERM first, SIGKILL after 10 s, then deletes WORKDIR (unless --keep).
# Refuses to delete a directory that ceph-rgw-start.sh did not make.
# Exit 0 when nothing of ours is left running (also when there was nothing to stop).
set -euo pipefail
die() { echo "ceph-rgw-stop: ERROR: $*" >&2; exit 1; }
log() { echo "ceph-rgw-stop: $*" >&2; }
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 WORKDIR [--keep]"
KEEP=0; [ "${2:-}" = "--keep" ] && KEEP=1
[ -n "${2:-}" ] && [ $KEEP -eq 0 ] && die "unknown option '$2'"
if [ ! -d "$1" ]; then log "$1 does not exist; nothing to stop"; exit 0; fi
W=$(cd "$1" && pwd -P)
CONF="$W/ceph.conf"
[ -e "$W/.ceph-rgw-test" ] || die "$W was not made by ceph-rgw-start.sh (no .ceph-rgw-test marker); not touching it"

source "$(dirname "${BASH_SOURCE[0]}")/ceph-rgw-lib.sh"  # alive, our_pids, term_wait, stop_ours
if [ -n "$(our_pids)" ]; then
  stop_ours
else
  log "no daemons running for $W"
fi
left=$(our_pids | tr '\n' ' ')
[ -z "${left// /}" ] || die "could not stop pids $left"
if [ $KEEP -eq 0 ]; then
  rm -rf -- "$W"
  log "stopped; removed $W"
else
  rm -f -- "$W"/run/*.pid "$W"/run/*.asok
  log "stopped; kept $W"
fi
