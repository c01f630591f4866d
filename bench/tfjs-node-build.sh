# Sourced by bench/setup-tensorflow.sh and bench/setup-tensorflow-wheel.sh (benchmark-only builds of the native
# backend): the steps both take once their libtensorflow is in place. Needs DEST (the build's folder, whose
# node_modules the bench hands to children as NODE_PATH), PKG ($DEST/node_modules/@tensorflow/tfjs-node) and
# NODE_BIN.

# Loads the build the way src/engine does and prints its libtensorflow version; fails if the backend does not
# register in the product's own tfjs-core.
tfjs_node_check() {
  NODE_PATH="$DEST/node_modules" TF_CPP_MIN_LOG_LEVEL=2 "$NODE_BIN" -e '
    const tf = require("@tensorflow/tfjs");
    require("@tensorflow/tfjs-node");
    const b = tf.findBackend("tensorflow");
    if (!b) { console.error("backend tensorflow not registered in the product tfjs-core"); process.exit(1); }
    console.log("tensorflow backend OK, libtensorflow", b.binding.TF_Version);
  ' 2> >(grep -v "not compiled to use" >&2)
}

# tfjs-node 4.22 into $DEST without its download script; its nested @tensorflow/* copies are removed so that it
# registers its backend in the product's tfjs-core (same version). $1: the package.json description.
tfjs_node_install() {
  mkdir -p "$DEST"
  cd "$DEST"
  [ -f package.json ] || printf '{ "name": "sdmprune-bench-%s", "private": true, "description": "%s" }\n' "$(basename "$DEST" | tr -d .)" "$1" > package.json
  if [ ! -d "$PKG" ]; then
    npm install --silent --ignore-scripts --no-audit --no-fund --no-package-lock @tensorflow/tfjs-node@4.22.0
  fi
  for d in "$DEST"/node_modules/@tensorflow/*; do
    [ "$(basename "$d")" = "tfjs-node" ] || rm -rf "$d"
  done
}

# Source build of the binding against $PKG/deps (headers and libraries in place), then the check. The node
# headers are those of the node that runs it (its prefix's include/node).
tfjs_node_build() {
  export npm_config_nodedir
  npm_config_nodedir="$(dirname "$(dirname "$NODE_BIN")")"
  PATH="$DEST/node_modules/.bin:$PATH"
  rm -rf "$PKG/build-tmp-napi-v8" "$PKG/lib/napi-v8"
  (cd "$PKG" && node-pre-gyp install --build-from-source --silent >/dev/null)
  cd "$HERE/.." && tfjs_node_check
}
