#!/usr/bin/env bash
# Benchmark-only set-up of the TensorFlow backend (tfjs-node 4.22 on libtensorflow 1.15) without internet
# beyond the npm registry (docs/engines.md, "Offline native backend for benchmarks"). Everything goes into bench/.tfjs-node/ (gitignored): the
# product's node_modules and `npm install` are never touched, and this route must never be shipped.
#
# The bench loads it by path: children run with NODE_PATH=bench/.tfjs-node/node_modules, so
# `require("@tensorflow/tfjs-node")` in src/engine resolves here. The nested @tensorflow/tfjs* copies are
# deleted so that tfjs-node registers its backend in the product's own tfjs-core (same version 4.22.0).
#
# Usage: bash bench/setup-tensorflow.sh        (idempotent; ~1–3 min with a warm npm cache)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="$HERE/.tfjs-node"
WORK="$DEST/.work"
PKG="$DEST/node_modules/@tensorflow/tfjs-node"
NODE_BIN="$(command -v node)"

. "$HERE/tfjs-node-build.sh"

if [ -f "$PKG/lib/napi-v8/tfjs_binding.node" ] && (cd "$HERE/.." && tfjs_node_check); then
  exit 0
fi

mkdir -p "$WORK"
cd "$WORK"

# 1. libtensorflow 1.15 from the soft-deprecated Lambda bundle (MIT): a brotli-compressed node_modules tar.
if [ ! -d deps/lib ]; then
  [ -f tfjs-node-lambda-releases-1.6.1.tgz ] || npm pack --silent tfjs-node-lambda-releases@1.6.1 >/dev/null
  BR="$(tar tzf tfjs-node-lambda-releases-1.6.1.tgz | grep 'nodejs12.x-tf2.7.0.br$' | head -1)"
  [ -n "$BR" ] || { echo "nodejs12.x-tf2.7.0.br not found in tfjs-node-lambda-releases-1.6.1.tgz" >&2; exit 1; }
  tar xzf tfjs-node-lambda-releases-1.6.1.tgz "$BR"
  "$NODE_BIN" -e '
    const fs = require("fs"), zlib = require("zlib");
    fs.createReadStream(process.argv[1]).pipe(zlib.createBrotliDecompress()).pipe(fs.createWriteStream("lambda.tar"))
      .on("finish", () => {});
  ' "$BR"
  rm -rf extract && mkdir extract
  tar xf lambda.tar -C extract --wildcards '*@tensorflow/tfjs-node/deps/*'
  src="$(find extract -type d -path '*@tensorflow/tfjs-node/deps' | head -1)"
  [ -n "$src" ] || { echo "deps/ not found in the Lambda tar" >&2; exit 1; }
  rm -rf deps.tmp && mv "$src" deps.tmp
  rm -rf extract lambda.tar "$BR" package
  # 2. the 4.22 binding looks for the 2.9.1 sonames
  (cd deps.tmp/lib && ln -sf libtensorflow.so.1.15.0 libtensorflow.so.2.9.1 && ln -sf libtensorflow_framework.so.1.15.0 libtensorflow_framework.so.2.9.1)
  # 3. TF 1.x has no TF_TString; string tensors are never used by sdmprune, so the stub aborts loudly.
  mkdir -p deps.tmp/include/tensorflow/core/platform
  cat > deps.tmp/include/tensorflow/core/platform/ctstring_internal.h <<'EOF'
/* Stub for building tfjs-node 4.22 against libtensorflow 1.15 (benchmarks only): TF 1.x has no TF_TString. */
#ifndef TENSORFLOW_CORE_PLATFORM_CTSTRING_INTERNAL_H_
#define TENSORFLOW_CORE_PLATFORM_CTSTRING_INTERNAL_H_
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef struct TF_TString { uint8_t raw[24]; } TF_TString;
static inline void TF_TString_Init(TF_TString *s) { memset(s, 0, sizeof(*s)); }
static inline void TF_TString_Dealloc(TF_TString *s) { (void)s; }
static inline size_t TF_TString_GetSize(const TF_TString *s) { (void)s; return 0; }
static inline void TF_TString_Copy(TF_TString *d, const char *s, size_t n) {
  (void)d; (void)s; (void)n; fprintf(stderr, "string tensors are not supported on libtensorflow 1.15\n"); abort();
}
static inline const char *TF_TString_GetDataPointer(const TF_TString *s) {
  (void)s; fprintf(stderr, "string tensors are not supported on libtensorflow 1.15\n"); abort(); return NULL;
}
#endif
EOF
  mv deps.tmp deps
fi

# 4. tfjs-node 4.22 without its download script, then a source build against deps/.
tfjs_node_install "benchmark-only; see bench/setup-tensorflow.sh"
rm -rf "$PKG/deps" && cp -a "$WORK/deps" "$PKG/deps"
tfjs_node_build
