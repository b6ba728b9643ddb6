#!/usr/bin/env bash
# api-contract.sh - fuzzes the broker against its own OpenAPI document with schemathesis (PyPI): starts
# `bulkhead serve` on the embedded default (demo policy, fresh data dir, free port), points schemathesis
# at the served /openapi.json with the demo's server key and operator token, and fails on any 5xx, any
# answer (status, body, headers, content type) the document does not describe, any request the document
# forbids that is accepted, and any unexpected error in the broker's log. Checks and exceptions:
# scripts/schemathesis.toml. Bounded: --max-examples (default 25 per operation). One worker: with two,
# hypothesis parses lambda sources on two threads at once, which CPython 3.11 before 3.11.8 can fail
# with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905), a failed run
# that says nothing about the broker.
#   bash scripts/api-contract.sh                 # builds first
#   bash scripts/api-contract.sh --no-build      # after `npm run build`
#   BULKHEAD_SCHEMATHESIS_SEED=123 bash scripts/api-contract.sh   # replay a run (it prints its seed)
set -euo pipefail
cd "$(dirname "$0")/.."
readonly SCHEMATHESIS_VERSION=4.32.5
root=$PWD
cache=$(realpath -m "${BULKHEAD_CACHE:-$HOME/.cache/bulkhead}")
venv=$cache/schemathesis-$SCHEMATHESIS_VERSION

# A virtualenv per version under the cache; the marker is written last so an interrupted install is redone.
if [[ ! -f $venv/.bulkhead-ok ]]; then
  echo "api-contract: installing schemathesis==$SCHEMATHESIS_VERSION into $venv" >&2
  rm -rf "$venv"
  "${BULKHEAD_PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
  touch "$venv/.bulkhead-ok"
fi

[[ ${1:-} == --no-build ]] || npm run build --silent

work=$(mktemp -d)
port=$(node -e "const s=require('node:net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
node dist/src/cli/main.js serve --data-dir "$work/data" --port "$port" >"$work/broker.log" 2>&1 &
broker=$!
trap 'kill "$broker" 2>/dev/null; wait "$broker" 2>/dev/null; rm -rf "$work"' EXIT
base=http://127.0.0.1:$port
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$broker" 2>/dev/null || { cat "$work/broker.log" >&2; echo "api-contract: the broker did not start" >&2; exit 1; }
  sleep 0.2
done

creds=$work/data/demo-credentials.json
BULKHEAD_SERVER_KEY=$(node -p "require('$creds').server.key")
BULKHEAD_OPERATOR_TOKEN=$(node -p "require('$creds').operator.token")
export BULKHEAD_SERVER_KEY BULKHEAD_OPERATOR_TOKEN

seed=()
[[ -n ${BULKHEAD_SCHEMATHESIS_SEED:-} ]] && seed=(--seed "$BULKHEAD_SCHEMATHESIS_SEED")
status=0
(cd "$work" && "$venv/bin/schemathesis" --no-color --config-file "$root/scripts/schemathesis.toml" run "$base/openapi.json" \
  --workers 1 --max-examples "${BULKHEAD_SCHEMATHESIS_EXAMPLES:-25}" --generation-database none "${seed[@]}") || status=$?

# Unexpected errors are logged at level 50 ("unexpected error", "token endpoint failed", ...) even when
# the answer itself was a documented one.
if grep -q '"level":50' "$work/broker.log"; then
  echo "api-contract: the broker logged unexpected errors:" >&2
  grep '"level":50' "$work/broker.log" | head -20 >&2
  status=1
fi
exit "$status"
