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
