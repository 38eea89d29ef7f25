# ceph-rgw-lib.sh: sourced by ceph-rgw-start.sh and ceph-rgw-stop.sh (needs CONF=WORKDIR/ceph.conf set).
# Finds and stops the ceph-mon / ceph-osd / radosgw processes of one work directory, in the order
# they shut down quickly: radosgw, then the OSD, then the mon.
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
