#!/usr/bin/env bash
# Submit N scoring tasks (a job array) and the dependent merge (+ prune) job; prints both job ids.
#   scripts/slurm/submit.sh N OUTDIR SCORES-ARGS... [--then PRUNE-ARGS...]
# Example (the paper's calibration: 1024 windows x 1024 tokens on 16 tasks):
#   scripts/slurm/submit.sh 16 runs/llama-scores --model llama.gguf --text c4.txt --samples 1024 --seq-len 1024 \
#     --seed 0 --criterion sd-taylor --alpha 0.4 --temperature 0.2 --then --model llama.gguf --ratio 0.2 --out pruned/
# Extra sbatch options (partition, time, memory) go in SBATCH_* environment variables or #SBATCH lines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
N=${1:?usage: submit.sh N OUTDIR SCORES-ARGS... [--then PRUNE-ARGS...]}
OUT=${2:?usage: submit.sh N OUTDIR SCORES-ARGS... [--then PRUNE-ARGS...]}
shift 2
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: N must be a positive integer, got $N" >&2; exit 2; }
scores=()
prune=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--then" ]; then shift; prune=("$@"); break; fi
  scores+=("$1")
  shift
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export SDMPRUNE=${SDMPRUNE:-"$(command -v node) $(cd "$here/../.." && pwd)/bin/sdmprune.js"}
array=$(sbatch --parsable --array=0-$((N - 1)) --output="$OUT/scores-%A_%a.out" "$here/score-array.sbatch" "$OUT" "${scores[@]}")
merge=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes --output="$OUT/merge-%j.out" "$here/merge-prune.sbatch" "$OUT" "$N" "${prune[@]}")
echo "scoring array job $array ($N tasks), merge job $merge; scores in $OUT/scores.json"
