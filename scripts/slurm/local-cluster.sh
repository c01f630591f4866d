#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for trying the job-array recipe and for CI (needs root and Debian's
# slurm-wlm and munge; runs without systemd).
#   scripts/slurm/local-cluster.sh start   munged + slurmctld + slurmd, waits until the node is idle
#   scripts/slurm/local-cluster.sh stop    stops what `start` started (by pid files)
#   scripts/slurm/local-cluster.sh status
# State, spool and logs live in $SDMPRUNE_SLURM_DIR (default /tmp/sdmprune-slurm). /etc/slurm/slurm.conf is
# written only when absent or written by this script before; a foreign one is left alone and `start` fails.
set -euo pipefail
DIR=${SDMPRUNE_SLURM_DIR:-/tmp/sdmprune-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by sdmprune scripts/slurm/local-cluster.sh"

die() { echo "local-cluster: $*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  [ "$(id -u)" = 0 ] || die "needs root (it starts munged, slurmctld and slurmd)"
  for b in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd sinfo; do
    command -v "$b" >/dev/null || die "$b not found: apt-get install -y --no-install-recommends slurm-wlm munge"
  done
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"

  # munge: key, folders, daemon (kept if one already answers)
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    install -d -o munge -g munge -m 700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
      head -c 1024 /dev/urandom > /etc/munge/munge.key
      chown munge:munge /etc/munge/munge.key
      chmod 400 /etc/munge/munge.key
    fi
    /usr/sbin/munged --force
    touch "$DIR/munged.ours"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
  fi

  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(free -m | awk '/^Mem:/ {print $2}') * 9 / 10 ))
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching it"
  fi
  mkdir -p /etc/slurm
  cat > "$CONF" <<CONF
$MARK
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

  alive "$DIR/slurmctld.pid" || /usr/sbin/slurmctld
  alive "$DIR/slurmd.pid" || /usr/sbin/slurmd
  for _ in $(seq 60); do
    state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
    case "$state" in idle | mixed | allocated) echo "local-cluster: node $host $state ($cpus CPUs, ${mem} MB)"; return 0 ;; esac
    sleep 0.5
  done
  die "the node did not become idle in 30 s (state: ${state:-none}); logs in $DIR/log"
}

stop() {
  local rc=0
  for d in slurmd slurmctld; do
    if alive "$DIR/$d.pid"; then kill "$(cat "$DIR/$d.pid")" || rc=1; fi
  done
  if [ -f "$DIR/munged.ours" ] && alive /run/munge/munged.pid; then
    kill "$(cat /run/munge/munged.pid)" || rc=1
    rm -f "$DIR/munged.ours"
  fi
  echo "local-cluster: stopped"
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) die "usage: $0 start|stop|status" ;;
esac
