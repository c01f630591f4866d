#!/usr/bin/env bash
# Benchmark-only: tfjs-node 4.22's binding built against the libtensorflow inside a `tensorflow-cpu` pip wheel
# (2.x, with oneDNN's kernels, unlike the SSE-only 1.15 of bench/setup-tensorflow.sh), into bench/.tfjs-node-tf2/
# (gitignored). Users get neither: tfjs-node's own install downloads libtensorflow 2.9.1. This build exists to tell
# how much of the native backend's gap to PyTorch is the 1.15 library (docs/engines.md, "Offline native backend
# for benchmarks"; bench/NOTES.md). Never shipped; the product's node_modules are never touched.
#
# Usage: bash bench/setup-tensorflow-wheel.sh /path/to/tensorflow_cpu-2.*-manylinux*_x86_64.whl
#   The wheel (hundreds of MB) stays outside the repo. Its two libraries (~850 MB unpacked) are extracted once
#   next to it, into <wheel without .whl>.libtensorflow/ (or $SDMPRUNE_TF_WHEEL_CACHE); the build links to them
#   through symlinks, so that folder must stay.
# Then: SDMPRUNE_BENCH_TFJS_NODE=tf2 (bench/run.ts, bench/ab.ts) or --backend tensorflow@tf2 (bench/run.ts: both
# builds side by side with --backend tensorflow,tensorflow@tf2), or NODE_PATH=bench/.tfjs-node-tf2/node_modules.
set -euo pipefail

WHEEL="${1:?usage: bash bench/setup-tensorflow-wheel.sh /path/to/tensorflow_cpu-2.x-….whl}"
[ -f "$WHEEL" ] || { echo "$WHEEL: no such file" >&2; exit 1; }
WHEEL="$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="$HERE/.tfjs-node-tf2"
PKG="$DEST/node_modules/@tensorflow/tfjs-node"
CACHE="${SDMPRUNE_TF_WHEEL_CACHE:-${WHEEL%.whl}.libtensorflow}"
NODE_BIN="$(command -v node)"

. "$HERE/tfjs-node-build.sh"

# 1. The C API lives in libtensorflow_cc.so.2 (TF_*, TFE_*), which needs libtensorflow_framework.so.2; the C
#    headers come with the wheel (tensorflow/include), including the TF_TString ones that 1.15 lacked.
if [ ! -f "$CACHE/.complete" ]; then
  rm -rf "$CACHE.tmp" && mkdir -p "$CACHE.tmp"
  (cd "$CACHE.tmp" && unzip -q "$WHEEL" \
    'tensorflow/libtensorflow_cc.so.2' 'tensorflow/libtensorflow_framework.so.2' 'tensorflow/include/LICENSE' \
    'tensorflow/include/tensorflow/c/*' 'tensorflow/include/tensorflow/core/platform/*' \
    'tensorflow/include/tsl/platform/*' 'tensorflow/include/xla/tsl/c/*')
  mkdir -p "$CACHE.tmp/lib"
  mv "$CACHE.tmp"/tensorflow/lib*.so.2 "$CACHE.tmp/lib/"
  mv "$CACHE.tmp/tensorflow/include" "$CACHE.tmp/include"
  rmdir "$CACHE.tmp/tensorflow"
  # (TFE_* and TF_Version are in libtensorflow_cc, tensor functions such as TF_NewTensor in the framework)
  syms="$(nm -D --defined-only "$CACHE.tmp"/lib/*.so.2)"
  for s in TF_Version TFE_NewContext TFE_Execute TF_NewTensor; do
    grep -qE " $s(@|\$)" <<<"$syms" || { echo "$WHEEL: neither library exports $s" >&2; exit 1; }
  done
  touch "$CACHE.tmp/.complete"
  rm -rf "$CACHE" && mv "$CACHE.tmp" "$CACHE"
fi

if [ -f "$PKG/lib/napi-v8/tfjs_binding.node" ] && [ "$(readlink -f "$PKG/deps/lib/libtensorflow_cc.so.2")" = "$CACHE/lib/libtensorflow_cc.so.2" ] && (cd "$HERE/.." && tfjs_node_check); then
  exit 0
fi

# 2. tfjs-node 4.22 without its download script.
tfjs_node_install "benchmark-only; see bench/setup-tensorflow-wheel.sh"

# 3. deps/ as binding.gyp expects it: headers, and -ltensorflow / -ltensorflow_framework. The linked binding
#    records the libraries' own sonames (libtensorflow_cc.so.2, libtensorflow_framework.so.2) and finds them
#    through its rpath $ORIGIN/../../deps/lib; the 2.9.1 names stop tfjs-node's install script from downloading
#    should it ever run here.
rm -rf "$PKG/deps" && mkdir -p "$PKG/deps/lib"
cp -a "$CACHE/include" "$PKG/deps/include"
cp "$CACHE/include/LICENSE" "$PKG/deps/LICENSE"
(
  cd "$PKG/deps/lib"
  for n in libtensorflow.so libtensorflow.so.2 libtensorflow.so.2.9.1 libtensorflow_cc.so.2; do ln -s "$CACHE/lib/libtensorflow_cc.so.2" "$n"; done
  for n in libtensorflow_framework.so libtensorflow_framework.so.2 libtensorflow_framework.so.2.9.1; do ln -s "$CACHE/lib/libtensorflow_framework.so.2" "$n"; done
)

# 4. Source build of the binding against deps/.
tfjs_node_build
