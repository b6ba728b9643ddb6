#!/usr/bin/env bash
# browser.sh - Debian's Chromium for the console's browser tests (test/e2e/console.test.ts drives it with
# playwright-core; no browser is downloaded by npm). Idempotent: a machine that has it returns at once.
#   source scripts/browser.sh        # .ci/run does this
#   bash scripts/browser.sh
# BULKHEAD_CHROMIUM names another binary (the tests read the same variable).
browser_main() {
  local chromium=${BULKHEAD_CHROMIUM:-/usr/bin/chromium}
  if [[ -x $chromium ]]; then
    echo "[browser] $("$chromium" --version 2>/dev/null | head -n 1) at $chromium" >&2
    return 0
  fi
  local log=${BULKHEAD_CACHE:-$HOME/.cache/bulkhead}/apt-chromium.log
  mkdir -p "$(dirname "$log")"
  echo "[browser] installing Debian's chromium (log: $log)" >&2
  local root=()
  ((EUID == 0)) || root=(sudo)
  "${root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 &&
    "${root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >>"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    echo "[browser] error: apt-get install chromium failed" >&2
    return 1
  }
  [[ -x $chromium ]] || { echo "[browser] error: $chromium still missing after the install" >&2; return 1; }
}
browser_main "$@" || { return 1 2>/dev/null || exit 1; }
