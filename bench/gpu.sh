#!/usr/bin/env bash
# GPU check of the webgpu backend on a machine that has a GPU but no Node.js and no network.
#
#   bash bench/gpu.sh pack          # here (a checkout with node_modules): writes bench/.gpu-pack/sdmprune-gpu.tar.xz
#                                   # = this machine's Node binary + a one-file esbuild bundle of the library and
#                                   # bench/gpu.ts + Dawn (npm webgpu) + deasync + Debian's Vulkan loader (libvulkan1)
#                                   # + bench/peer.py; under 64 MiB
#   bash bench/gpu.sh [--smoke]     # on the GPU machine (copy the checkout, or just this script and the .tar.xz):
#                                   # unpacks to a temp dir and runs; packs first if there is no pack but node_modules
#
# It runs a stories110M-shaped and a Llama-3.2-1B-shaped model (random weights, float32, 128-token windows):
# sd-taylor importance (teacher cache first) and perplexity, and prints tokens/s, GFLOP/s (model FLOPs, see
# bench/workloads.ts) and peak GPU memory. If python3 with a CUDA build of torch is there, the same workloads
# run in PyTorch (bench/peer.py --device cuda) and the ratio sdmprune / PyTorch is printed.
# --smoke: tiny shapes of the same structure; accepts a software adapter (Mesa llvmpipe via Dawn's OpenGL
# backend) and a CPU torch peer, so the whole route can be checked on a machine without a GPU.
# Environment: GPU_BENCH_TIMEOUT (seconds for the sdmprune run, default 420), GPU_BENCH_PYTHON or SDMPRUNE_PEER_PYTHON
# (peer interpreter; else python3 on PATH, else /usr/bin/python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
packdir="$here/.gpu-pack"
pack="$packdir/sdmprune-gpu.tar.xz"
limit=$((64 * 1024 * 1024))

cmd="run"
smoke=""
for a in "$@"; do
  case "$a" in
    pack) cmd="pack" ;;
    run) cmd="run" ;;
    --smoke) smoke="--smoke" ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $a (pack, run, --smoke)" >&2; exit 2 ;;
  esac
done

do_pack() {
  command -v node >/dev/null || { echo "gpu.sh pack: needs node (run it in a checkout after npm install)" >&2; exit 1; }
  [ -d "$root/node_modules/webgpu" ] || { echo "gpu.sh pack: node_modules/webgpu missing (npm install)" >&2; exit 1; }
  local stage major
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' RETURN
  major="$(node -p 'process.versions.node.split(".")[0]')"
  mkdir -p "$stage/bin" "$stage/lib" "$stage/node_modules/webgpu/dist/linux-x64" "$stage/node_modules/deasync/bin/linux-x64-node-$major"
  echo "gpu.sh: bundling bench/gpu.ts with esbuild"
  # native and unused packages stay outside the bundle; the engine loads them lazily
  "$root/node_modules/.bin/esbuild" "$root/bench/gpu.ts" --bundle --platform=node --format=cjs --target=node20 \
    --outfile="$stage/gpu.cjs" --log-level=warning \
    --external:webgpu --external:deasync --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
    --external:@tensorflow/tfjs-backend-wasm
  cp "$(command -v node)" "$stage/bin/node"
  local w="$root/node_modules/webgpu"
  cp "$w/package.json" "$w/index.js" "$w/LICENSE.md" "$stage/node_modules/webgpu/"
  cp "$w/dist/linux-x64/dawn.node" "$stage/node_modules/webgpu/dist/linux-x64/"
  local d="$root/node_modules/deasync"
  cp "$d/package.json" "$d/index.js" "$d/LICENSE" "$stage/node_modules/deasync/"
  cp "$d/bin/linux-x64-node-$major/deasync.node" "$stage/node_modules/deasync/bin/linux-x64-node-$major/"
  echo "gpu.sh: fetching Debian's libvulkan1 (Vulkan loader)"
  local deb
  deb="$(mktemp -d)"
  (cd "$deb" && apt-get download libvulkan1 >/dev/null 2>&1) || { apt-get update -qq && (cd "$deb" && apt-get download libvulkan1 >/dev/null); }
  dpkg-deb -x "$deb"/libvulkan1_*.deb "$deb/x"
  cp -a "$deb"/x/usr/lib/x86_64-linux-gnu/libvulkan.so.1* "$stage/lib/"
  rm -rf "$deb"
  cp "$root/bench/peer.py" "$stage/"
  node -e 'const [a,b]=process.argv.slice(1);require("fs").writeFileSync(b,JSON.stringify({node:process.version,built:new Date().toISOString(),commit:a}))' \
    "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$stage/PACK.json"
  mkdir -p "$packdir"
  echo "gpu.sh: compressing (xz)"
  tar -C "$stage" -cf - . | xz -T0 -4 > "$pack.tmp"
  local size
  size=$(stat -c %s "$pack.tmp")
  if [ "$size" -ge "$limit" ]; then
    echo "gpu.sh pack: $pack is $((size / 1048576)) MiB, over the 64 MiB limit" >&2
    rm -f "$pack.tmp"
    exit 1
  fi
  mv "$pack.tmp" "$pack"
  echo "gpu.sh: $pack $(du -h "$pack" | cut -f1) (node $(du -h "$stage/bin/node" | cut -f1), bundle $(du -h "$stage/gpu.cjs" | cut -f1), dawn $(du -h "$stage/node_modules/webgpu/dist/linux-x64/dawn.node" | cut -f1) uncompressed)"
}

# A Vulkan ICD manifest for NVIDIA when the driver's own is missing (containers started without the
# "graphics" capability often lack it, although libGLX_nvidia, which implements the ICD, may be there).
nvidia_icd() {
  local out="$1" lib=""
  for f in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json; do
    [ -e "$f" ] && return 1
  done
  lib="$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia.so.0/ {print $NF; exit}')"
  [ -n "$lib" ] || for c in /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 /usr/lib64/libGLX_nvidia.so.0; do [ -e "$c" ] && lib="$c" && break; done
  [ -n "$lib" ] || return 1
  printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$lib" > "$out"
}

do_run() {
  x="$(mktemp -d "${TMPDIR:-/tmp}/sdmprune-gpu.XXXXXX")"
  trap 'rm -rf "$x"' EXIT
  xz -dc "$pack" | tar -C "$x" -xf -
  echo "gpu.sh: pack $(cat "$x/PACK.json")"
  export LD_LIBRARY_PATH="$x/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if nvidia_icd "$x/nvidia_icd.json"; then
    export VK_ICD_FILENAMES="$x/nvidia_icd.json" VK_DRIVER_FILES="$x/nvidia_icd.json"
    echo "gpu.sh: no Vulkan ICD manifest on this machine; using $(cat "$x/nvidia_icd.json")"
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu.sh: GPU /' || true
  local out="$x/out.txt" code=0
  timeout "${GPU_BENCH_TIMEOUT:-420}" "$x/bin/node" "$x/gpu.cjs" $smoke 2>&1 | grep -v '^Warning: maxDynamic' | tee "$out" || code=$?
  grep -q '^RESULT ' "$out" || { echo "gpu.sh: no result from the sdmprune run (exit $code)" >&2; exit 1; }

  # The PyTorch peer: a CUDA build of torch, or any torch for --smoke.
  # GPU_BENCH_PYTHON, else SDMPRUNE_PEER_PYTHON (npm run bench's variable), else python3 on PATH, else Debian's.
  local py="${GPU_BENCH_PYTHON:-${SDMPRUNE_PEER_PYTHON:-}}" device=""
  if [ -z "$py" ]; then for c in python3 /usr/bin/python3; do command -v "$c" >/dev/null && "$c" -c 'import torch' 2>/dev/null && py="$c" && break; done; fi
  if [ -n "$py" ]; then
    if "$py" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then device=cuda
    elif [ -n "$smoke" ]; then device=cpu
    fi
  fi
  local peers="$x/peers.txt"
  : > "$peers"
  if [ -n "$device" ]; then
    "$x/bin/node" -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").split("\n").find(s=>s.startsWith("RESULT "));for(const r of JSON.parse(l.slice(7)).results)console.log([r.workload,r.seq,r.windows,JSON.stringify(r.config)].join("\t"))' "$out" |
      while IFS=$'\t' read -r w seq n cfg; do
        echo "gpu.sh: PyTorch ($device) $w"
        topk=64; [ "$smoke" ] && topk=full
        r="$(timeout 300 "$py" "$x/peer.py" --config "$cfg" --seq "$seq" --windows "$n" --tasks teacher,importance,ppl --topk "$topk" --device "$device" --threads "$(nproc)" 2>/dev/null | tail -1 || true)"
        [ -n "$r" ] || r='{"error":"peer failed"}'
        printf '%s\t%s\n' "$w" "$r" >> "$peers"
      done
  else
    echo "gpu.sh: no python with CUDA torch here (${py:-none found}; set GPU_BENCH_PYTHON or SDMPRUNE_PEER_PYTHON); PyTorch peer skipped"
  fi
  "$x/bin/node" - "$out" "$peers" <<'EOF'
const fs = require("fs");
const res = JSON.parse(fs.readFileSync(process.argv[2], "utf8").split("\n").find((s) => s.startsWith("RESULT ")).slice(7));
const peers = Object.fromEntries(fs.readFileSync(process.argv[3], "utf8").split("\n").filter(Boolean).map((l) => { const i = l.indexOf("\t"); return [l.slice(0, i), JSON.parse(l.slice(i + 1))]; }));
const f = (x) => (x === undefined || !isFinite(x) ? "–" : x >= 100 ? x.toFixed(0) : x.toFixed(2));
console.log(`\nbackend: ${res.summary}${res.smoke ? "  [--smoke: tiny shapes]" : ""}`);
console.log("| workload | importance tok/s | GFLOP/s | ppl tok/s | GFLOP/s | peak GPU GiB | PyTorch importance tok/s | ratio | PyTorch ppl tok/s | ratio |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of res.results) {
  const p = peers[r.workload];
  const pi = p && p.importance ? p.importance.median : undefined;
  const pp = p && p.ppl ? p.ppl.median : undefined;
  const who = p ? (p.error ? `peer error: ${p.error}` : `${p.device}${p.gpu ? " " + p.gpu : ""}, torch ${p.torch}`) : "";
  console.log(`| ${r.workload} | ${f(r.importanceTokPerS)} | ${f(r.importanceGflops)} | ${f(r.pplTokPerS)} | ${f(r.pplGflops)} | ${(r.peakGpuBytes / 2 ** 30).toFixed(2)} | ${f(pi)} | ${pi ? f(r.importanceTokPerS / pi) + "×" : "–"} | ${f(pp)} | ${pp ? f(r.pplTokPerS / pp) + "×" : "–"} |${who ? " " + who : ""}`);
}
EOF
}

if [ "$cmd" = "pack" ]; then
  do_pack
  exit 0
fi
if [ ! -f "$pack" ]; then
  if [ -d "$root/node_modules/webgpu" ] && command -v node >/dev/null; then do_pack; else
    echo "gpu.sh: no pack at $pack; run 'bash bench/gpu.sh pack' on a machine with Node and node_modules first" >&2
    exit 1
  fi
fi
do_run
