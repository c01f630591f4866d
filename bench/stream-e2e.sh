#!/bin/bash
# Peak memory of one real CLI command on a big checkpoint (docs/memory.md, "Layer streaming"; issue 20).
#
#   bench/stream-e2e.sh [--limit BYTES] NAME sdmprune-args...
#
# Runs `node bin/sdmprune.js sdmprune-args...` (after `node scripts/build.js`) under /usr/bin/time -v with the
# node process's RSS (KiB) sampled every second (with --limit, also the cgroup's memory.stat); writes NAME.out, NAME.err (time -v at the end) and NAME.rss in the
# current folder. --limit runs it in a cgroup-v1 memory limit made as a child of this shell's own memory cgroup
# (containers without systemd have no `systemd-run --scope -p MemoryMax=`); prints the cgroup's peak usage and
# OOM kills. SDMPRUNE_BACKEND defaults to wasm. Run heavy cases one at a time (e.g. each under one flock).
#
# Checkpoints: npx tsx bench/memory-file.ts --layers 16 --dtypes f32 --commands info --seq-len 128 --keep --dir D
# (the Llama-3.2-1B shape; --hidden 3072 --heads 24 --layers 8 for the 3B layer shape), windows in D/windows.json.
set -u
CLI="$(cd "$(dirname "$0")/.." && pwd)/bin/sdmprune.js"
LIMIT=""
if [ "${1:-}" = "--limit" ]; then LIMIT=$2; shift 2; fi
NAME=$1; shift
export SDMPRUNE_BACKEND=${SDMPRUNE_BACKEND:-wasm}
CG=""
if [ -n "$LIMIT" ]; then
  PARENT=/sys/fs/cgroup/memory$(grep ':memory:' /proc/self/cgroup | cut -d: -f3)
  CG=$PARENT/sdmprune-bench-$$
  mkdir -p "$CG" && echo "$LIMIT" > "$CG/memory.limit_in_bytes" && echo $$ > "$CG/cgroup.procs" || { echo "could not make a memory cgroup under $PARENT" >&2; exit 3; }
fi
# STREAM_TIMEOUT=S ends the command after S seconds (to keep a shared heavy-run slot short)
/usr/bin/time -v ${STREAM_TIMEOUT:+timeout $STREAM_TIMEOUT} node "$CLI" "$@" > "$NAME.out" 2> "$NAME.err" &
TP=$!
: > "$NAME.rss"
t=0
while kill -0 $TP 2>/dev/null; do
  p=$(pgrep -f "^node $CLI" | head -1)
  if [ -n "$p" ]; then
    # with --limit, also the cgroup's anonymous memory, page cache and dirty/writeback pages (bytes): the page
    # cache counts toward a cgroup-v1 limit but clean pages are reclaimed; anonymous memory is what gets killed
    if [ -n "$CG" ]; then
      echo "$t $(ps -o rss= -p "$p") $(awk '$1=="total_rss"||$1=="total_cache"||$1=="total_dirty"||$1=="total_writeback"{printf "%s=%s ", $1, $2}' "$CG/memory.stat")" >> "$NAME.rss"
    else
      echo "$t $(ps -o rss= -p "$p")" >> "$NAME.rss"
    fi
  fi
  t=$((t + 1)); sleep 1
done
wait $TP
rc=$?
echo "$NAME: exit $rc, $(grep -E 'Maximum resident' "$NAME.err" | sed 's/^\s*//'), $(grep -E 'Elapsed' "$NAME.err" | sed 's/^\s*//')"
if [ -n "$CG" ]; then
  echo "cgroup limit $(cat "$CG/memory.limit_in_bytes"), peak usage $(cat "$CG/memory.max_usage_in_bytes") (page cache included), peak sampled anonymous $(awk '{for (i = 3; i <= NF; i++) if ($i ~ /^total_rss=/) {split($i, a, "="); if (a[2] > m) m = a[2]}} END {printf "%.0f", m}' "$NAME.rss"), $(grep oom_kill "$CG/memory.oom_control" | tr '\n' ' ')"
  echo $$ > "$PARENT/cgroup.procs"
  rmdir "$CG"
fi
exit $rc
